"""List matching that survives evasion: trimming, rotations, candidates against brute force,
local features, list filtering and removal (detectors/matching.py, detectors/trimming.py)."""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np
import pytest
from PIL import Image

from detectors.hashing import ImageHashes, hamming_hex
from detectors.matching import (
    DIHEDRAL,
    EntryHashes,
    FrameSignals,
    ListIndex,
    View,
    frame_views,
    media_signals,
    phash_usable,
)
from detectors.trimming import border_box, content_box
from tests.support import transforms as T

# Four photos of different kinds: a portrait, a cat, a still life, a grey street scene.
PHOTOS = ("astronaut", "chelsea", "coffee", "camera")
# One edit of each family the matcher must follow (tests/support/transforms.py)
FAMILY_EDITS = {
    "jpeg": "jpeg30",
    "resize": "resize0.25",
    "mirror": "mirror_jpeg70",
    "rotate90": "rot270",
    "small_rotation": "rot3.5_expand",
    "crop_small": "crop10_3",
    "border": "border20_white",
    "screenshot": "phone",
    "overlay": "emoji",
    "colour": "darker_contrast",
    "webp": "webp50",
}


def jpeg(rgb: np.ndarray, quality: int = 92) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@lru_cache(maxsize=1)
def photos() -> dict[str, np.ndarray]:
    return T.photos()


@lru_cache(maxsize=1)
def edits() -> dict[str, T.Variant]:
    return {v.name: v for v in T.all_variants()}


def entry_of(entry_id: int, list_id: int, frame: FrameSignals) -> EntryHashes:
    h = frame.hashes
    views = tuple((v.crop, v.pdq[0], v.quality, v.phash) for v in frame.views[1:])
    return EntryHashes(entry_id, list_id, h.pdq, h.pdq_quality, h.phash, h.sha256, views)


@pytest.fixture(scope="module")
def listed() -> tuple[ListIndex, dict[str, int]]:
    """The four photos, each an entry of list 1."""
    index = ListIndex()
    ids = {}
    for i, name in enumerate(PHOTOS, start=1):
        frame = media_signals(jpeg(photos()[name], 95))[0]
        index.add(entry_of(i, 1, frame), frame.fingerprint)
        ids[name] = i
    return index, ids


# --- trimming ------------------------------------------------------------------------------


def test_border_box_finds_the_photo_inside_a_uniform_border():
    rgb = photos()["coffee"]
    h, w = rgb.shape[:2]
    box = border_box(T.border(rgb, 0.2, (255, 255, 255)))
    assert box is not None
    x, y, bw, bh = box
    assert abs(x - round(0.2 * w)) <= 3 and abs(y - round(0.2 * h)) <= 3
    assert abs(bw - w) <= 6 and abs(bh - h) <= 6


def test_letterbox_bars_are_stripped():
    rgb = photos()["astronaut"]
    framed = T.letterbox(rgb, 16 / 9)
    box = border_box(framed)
    assert box is not None and abs(box[2] - rgb.shape[1]) <= 6 and abs(box[3] - rgb.shape[0]) <= 6


def test_content_box_finds_the_photo_in_a_phone_screenshot():
    rgb = photos()["chelsea"]
    shot = T.screenshot(rgb, kind="phone")
    box = content_box(shot)
    assert box is not None
    x, y, w, h = box
    # the picture is pasted 36 px from the left, scaled to the width less the margins
    assert abs(x - 36) <= 8 and abs(w - (1080 - 72)) <= 12
    assert abs(h / w - rgb.shape[0] / rgb.shape[1]) < 0.03


@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_a_plain_photo_has_nothing_to_trim(name):
    rgb = photos()[name]
    assert border_box(rgb) is None
    assert content_box(rgb) is None


def test_objects_on_a_plain_background_are_not_taken_for_a_frame():
    # cells on a flat background: a blob, not a rectangle, so no "picture inside"
    assert content_box(T.hard_negatives()["blobs"]) is None


def test_flat_images_give_no_box():
    flat = np.full((300, 400, 3), 128, np.uint8)
    assert border_box(flat) is None and content_box(flat) is None


def test_views_hold_eight_orientations_and_trimmed_crops():
    rgb = T.border(photos()["coffee"], 0.2, (0, 0, 0))
    views = frame_views(rgb)
    assert [v.crop for v in views][:2] == ["full", "border"] and views[-1].crop == "value"
    assert all(len(v.pdq) == len(DIHEDRAL) for v in views[:-1])
    assert len(views[-1].pdq) == 1  # the value view: as is only
    # the mirrored copy's PDQ is one of the original's eight orientations
    mirror = frame_views(np.ascontiguousarray(rgb[:, ::-1]))[0].pdq[0]
    assert min(hamming_hex(mirror, p) for p in views[0].pdq) <= 16
    assert hamming_hex(mirror, views[0].pdq[0]) > 31


# --- each family is matched; distinct pictures are not ------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILY_EDITS))
def test_each_transform_family_is_matched(listed, family):
    index, ids = listed
    edit = edits()[FAMILY_EDITS[family]]
    for name in PHOTOS:
        copy = media_signals(jpeg(edit(photos()[name]), 90))
        found = {c.entry_id for c in index.candidates(copy)}
        assert found == {ids[name]}, f"{edit.name} of {name}: found {found}"


def test_distinct_pictures_do_not_match(listed):
    index, _ = listed
    others = [photos()[n] for n in ("rocket", "coins", "moon", "motorcycle", "clock")]
    others += list(T.hard_negatives().values())
    for rgb in others:
        assert index.candidates(media_signals(jpeg(rgb, 90))) == []


def test_the_other_view_of_a_stereo_pair_is_not_traced_to_the_first():
    left, right = T.stereo_pair()
    index = ListIndex()
    frame = media_signals(jpeg(left))[0]
    index.add(entry_of(1, 1, frame), frame.fingerprint)
    assert index.candidates(media_signals(jpeg(left, 70))) != []
    assert index.candidates(media_signals(jpeg(right))) == []


def test_a_crop_is_found_by_local_features_only(listed):
    index, ids = listed
    copy = media_signals(jpeg(T.crop(photos()["coffee"], 0.1, 3), 90))
    found = index.candidates(copy)
    assert [(c.entry_id, c.algorithm) for c in found] == [(ids["coffee"], "local")]
    assert index.candidates(copy, local=False) == []


# --- candidates agree with brute force ----------------------------------------------------------


def _random_hex(rng: np.random.Generator, nbytes: int) -> str:
    return rng.integers(0, 256, nbytes, dtype=np.uint8).tobytes().hex()


def _near(rng: np.random.Generator, hex_hash: str, bits: int) -> str:
    value = int(hex_hash, 16)
    for b in rng.choice(4 * len(hex_hash), bits, replace=False):
        value ^= 1 << int(b)
    return f"{value:0{len(hex_hash)}x}"


def brute_force(
    entries: list[EntryHashes],
    frame: FrameSignals,
    lists: set[int] | None,
    distance: int,
    min_quality: int,
    phash_distance: int,
) -> dict[tuple[int, str, bool], int]:
    """Every (entry, algorithm, whole) the frame matches with its least distance, by plain loops."""
    out: dict[tuple[int, str, bool], int] = {}

    def offer(key: tuple[int, str, bool], d: int) -> None:
        out[key] = min(d, out.get(key, d))

    for e in entries:
        if lists is not None and e.list_id not in lists:
            continue
        if e.sha256 and e.sha256 == frame.hashes.sha256:
            offer((e.entry_id, "sha256", True), 0)
        hashes = [(e.pdq, e.pdq_quality, e.phash)] + [(p, q, ph) for _, p, q, ph in e.views]
        for view in frame.views:
            pdq_ok = view.quality >= min_quality
            for pdq, q, ph in hashes:
                entry_pdq_ok = pdq is not None and (q is None or q >= min_quality)
                if pdq_ok and entry_pdq_ok:
                    d = min(hamming_hex(code, pdq) for code in view.pdq)
                    if d <= distance:
                        offer((e.entry_id, "pdq", view.whole), d)
                if phash_usable(ph) and phash_usable(view.phash) and not (pdq_ok and entry_pdq_ok):
                    d = hamming_hex(ph, view.phash)
                    if d <= phash_distance:
                        offer((e.entry_id, "phash", view.whole), d)
    return out


@pytest.mark.parametrize("mih_threshold", [65536, 8])
def test_the_candidate_set_agrees_with_brute_force(mih_threshold):
    rng = np.random.default_rng(mih_threshold)
    centres = [_random_hex(rng, 32) for _ in range(6)]
    phashes = [_random_hex(rng, 8) for _ in range(6)]
    entries = []
    for i in range(1, 301):
        c = int(rng.integers(len(centres)))
        quality = [None, 20, 60, 100][int(rng.integers(4))]
        pdq = None if rng.random() < 0.1 else _near(rng, centres[c], int(rng.integers(0, 60)))
        phash = _near(rng, phashes[c], int(rng.integers(0, 14))) if rng.random() < 0.8 else None
        if pdq is None and phash is None:
            phash = phashes[c]
        views = tuple(
            ("content", _near(rng, centres[c], int(rng.integers(0, 60))), int(rng.integers(30, 101)), None)
            for _ in range(int(rng.integers(0, 2)))
        )
        sha = _random_hex(rng, 32) if rng.random() < 0.5 else None
        entries.append(EntryHashes(i, 1 + i % 3, pdq, quality, phash, sha, views))
    index = ListIndex(mih_threshold=mih_threshold, local=False)
    index.add_many(entries[:150])
    for e in entries[150:]:
        index.add(e)
    for q in range(40):
        c = int(rng.integers(len(centres)))
        views = tuple(
            View(
                crop,
                (0, 0, 10, 10),
                tuple(_near(rng, centres[c], int(rng.integers(0, 70))) for _ in range(8)),
                int(rng.integers(20, 101)),
                _near(rng, phashes[c], int(rng.integers(0, 14))),
            )
            for crop in ("full", "content")[: 1 + q % 2]
        )
        sha = entries[q].sha256 or "0" * 64
        frame = FrameSignals(ImageHashes(views[0].pdq[0], views[0].quality, views[0].phash, "0" * 16, sha), views)
        lists = None if q % 3 == 0 else {1 + q % 3}
        for distance, min_quality, phash_distance in ((31, 50, 8), (20, 80, 4), (45, 0, 10)):
            got = index.candidates(
                [frame], list_ids=lists, distance=distance, min_quality=min_quality, phash_distance=phash_distance
            )
            want = brute_force(entries, frame, lists, distance, min_quality, phash_distance)
            assert {(c.entry_id, c.algorithm, c.whole): c.distance for c in got} == want
            assert all(c.list_id == entries[c.entry_id - 1].list_id for c in got)


# --- lists, allow-view rule, removal ------------------------------------------------------------


def test_list_filter_happens_after_the_search():
    frame = media_signals(jpeg(photos()["rocket"]))[0]
    index = ListIndex()
    index.add(entry_of(1, 7, frame), frame.fingerprint)
    index.add(entry_of(2, 8, frame), frame.fingerprint)
    copy = media_signals(jpeg(photos()["rocket"], 60))
    assert {c.list_id for c in index.candidates(copy)} == {7, 8}
    assert {c.list_id for c in index.candidates(copy, list_ids={8})} == {8}
    assert index.candidates(copy, list_ids={9}) == []


def test_a_match_through_the_content_view_is_not_whole():
    rgb = photos()["chelsea"]
    frame = media_signals(jpeg(rgb))[0]
    index = ListIndex(local=False)
    index.add(entry_of(1, 1, frame))
    shot = media_signals(jpeg(T.screenshot(rgb, kind="phone"), 85), local=False)
    found = index.candidates(shot, local=False)
    assert found and all(not c.whole for c in found)
    assert {c.view.split(",")[0] for c in found} == {"content"}
    plain = index.candidates(media_signals(jpeg(rgb, 70), local=False), local=False)
    assert any(c.whole for c in plain)


def test_a_removed_entry_no_longer_matches_by_any_signal(listed):
    index, ids = listed
    frames = media_signals(jpeg(photos()["coffee"], 95))  # same bytes: sha256, pdq, phash, local
    crop = media_signals(jpeg(T.crop(photos()["coffee"], 0.1, 3), 90))
    entry = ids["coffee"]
    algorithms = {c.algorithm for c in index.candidates(frames) if c.entry_id == entry}
    assert {"sha256", "pdq", "local"} <= algorithms
    removed = ListIndex()
    for name, i in ids.items():
        frame = media_signals(jpeg(photos()[name], 95))[0]
        removed.add(entry_of(i, 1, frame), frame.fingerprint)
    assert removed.remove([entry]) == 1
    assert entry not in removed and removed.list_of(entry) == 0
    assert all(c.entry_id != entry for c in removed.candidates(frames))
    assert all(c.entry_id != entry for c in removed.candidates(crop))
    assert removed.local_size == len(ids) - 1
    assert removed.remove([entry]) == 0  # twice: nothing left to remove


def test_an_entry_added_again_replaces_its_hashes():
    a = media_signals(jpeg(photos()["rocket"]))[0]
    b = media_signals(jpeg(photos()["coins"]))[0]
    index = ListIndex(local=False)
    index.add(entry_of(5, 1, a))
    index.add(entry_of(5, 2, b))
    assert len(index) == 1 and index.list_of(5) == 2
    assert index.candidates(media_signals(jpeg(photos()["rocket"], 70), local=False), local=False) == []
    assert {c.entry_id for c in index.candidates([b], local=False)} == {5}


# --- issue 15: evasions missed before --------------------------------------------------------


def test_a_phone_screenshot_recompressed_at_jpeg_70_is_matched():
    """The picture is small inside the chrome: its own points are added to the frame's
    fingerprint (missed before on these photos: few, coarse points after recompression)."""
    pics = {name: photos()[name] for name in ("motorcycle", "retina_2")}
    index = ListIndex()
    for i, rgb in enumerate(pics.values(), start=1):
        frame = media_signals(jpeg(rgb, 95))[0]
        index.add(entry_of(i, 1, frame), frame.fingerprint)
    shots = [v for v in T.evasion_variants()["screenshot_jpeg"] if v.name in ("phone_jpeg70", "phone_small_jpeg70")]
    for i, rgb in enumerate(pics.values(), start=1):
        for shot in shots:
            found = {c.entry_id for c in index.candidates(media_signals(jpeg(shot(rgb), 95)))}
            assert found == {i}, shot.name


def test_a_strong_hue_shift_is_matched():
    """Greens turned purple (a meadow): PDQ lands just past 31 and the descriptors too far
    apart for the index's votes; the near PDQ entry is verified geometrically. A retina on
    black: PDQ within 31 needs confirmation, which the picture's own points now give.
    Both missed before."""
    from tests.support.imagegen import scene

    pics = {"meadow": scene("meadow", 1, (1600, 1200)), "retina_2": photos()["retina_2"]}
    index = ListIndex()
    for i, rgb in enumerate(pics.values(), start=1):
        frame = media_signals(jpeg(rgb, 95))[0]
        index.add(entry_of(i, 1, frame), frame.fingerprint)
    hue90 = next(v for v in T.evasion_variants()["hue"] if v.name == "hue90")
    for i, (name, rgb) in enumerate(pics.items(), start=1):
        found = {c.entry_id for c in index.candidates(media_signals(jpeg(hue90(rgb))))}
        assert found == {i}, name


def test_screenshots_and_hue_shifts_of_unlisted_pictures_match_nothing(listed):
    """The picture's own points (screenshots) and the near-PDQ check (hue) find no false
    match: flat, repetitive and unrelated pictures, framed or recoloured, stay unmatched."""
    index, _ = listed
    pics = {name: rgb for name, rgb in T.hard_negatives().items() if name in ("grass", "text_page_1", "checker_12")}
    pics["retina_2"] = photos()["retina_2"]  # a photo that is not in the list
    edits = [v for v in T.evasion_variants()["screenshot_jpeg"][:1] + T.evasion_variants()["hue"][2:3]]
    for name, rgb in pics.items():
        for edit in edits:
            assert index.candidates(media_signals(jpeg(edit(rgb)))) == [], (name, edit.name)


# --- issue 15: crops, small rotations and hue shifts of pictures the index could not vote for ---------------
# Scenes of seeds no bench uses (tests/support/imagegen.scene): streets of identical windows and
# leaves, where the code before missed these edits.


@lru_cache(maxsize=1)
def scenes() -> dict[str, np.ndarray]:
    from tests.support.imagegen import scene

    pics = {f"{kind}_{seed}": scene(kind, seed, (1280, 960)) for kind in ("city", "foliage") for seed in (3, 4, 5)}
    return pics | {"city_7": scene("city", 7, (1280, 960))}


@pytest.fixture(scope="module")
def scenes_listed() -> tuple[ListIndex, dict[str, int]]:
    index = ListIndex()
    ids = {}
    for i, (name, rgb) in enumerate(scenes().items(), start=1):
        frame = media_signals(jpeg(rgb, 95))[0]
        index.add(entry_of(i, 1, frame), frame.fingerprint)
        ids[name] = i
    return index, ids


def _found(index: ListIndex, edit: T.Variant, rgb: np.ndarray) -> set[int]:
    return {c.entry_id for c in index.candidates(media_signals(jpeg(edit(rgb), 90)))}


@pytest.mark.parametrize(
    ("family", "edit", "name"),
    [
        ("rotation_3_5", "rot-4_trim", "city_4"),
        ("crop_small", "crop10_3", "city_3"),
        ("crop_one_side", "crop10_right", "city_3"),
        ("mirror_crop_jpeg", "mirror_crop5_21_jpeg60", "city_7"),
    ],
)
def test_crops_and_small_rotations_of_a_street_of_windows_are_matched(scenes_listed, family, edit, name):
    """The copy shows the picture ~1.1 times larger, halfway between two ORB scales: its
    descriptors left no intact word for the index's votes (missed before); the points at
    half a pyramid step give them back, and verification lines them up."""
    index, ids = scenes_listed
    variant = next(v for v in T.variants()[family] if v.name == edit)
    assert _found(index, variant, scenes()[name]) == {ids[name]}


@pytest.mark.parametrize(("edit", "name"), [("hue45", "city_5"), ("hue90", "foliage_4"), ("hue90", "foliage_5")])
def test_hue_shifts_are_matched_by_the_value_view(scenes_listed, edit, name):
    """Greens turned purple change the luma PDQ reads (past 40 bits) and the descriptors
    (too few inliers); the value channel's PDQ does not move (missed before)."""
    index, ids = scenes_listed
    variant = next(v for v in T.variants()["hue"] if v.name == edit)
    found = index.candidates(media_signals(jpeg(variant(scenes()[name]), 90)))
    assert {c.entry_id for c in found} == {ids[name]}


def test_the_value_view_does_not_move_under_a_hue_shift():
    rgb = scenes()["foliage_4"]
    before = frame_views(rgb)
    after = frame_views(T.colour_shift(rgb, hue=90))
    assert before[-1].crop == after[-1].crop == "value"
    assert hamming_hex(before[0].pdq[0], after[0].pdq[0]) > 31  # luma moved out of reach
    assert hamming_hex(before[-1].pdq[0], after[-1].pdq[0]) <= 8


def test_edits_of_unlisted_scenes_match_nothing(scenes_listed):
    """The extra points and the value view find no false match: other streets and leaves,
    flat and repetitive pictures, cropped, turned and recoloured."""
    from tests.support.imagegen import scene

    index, _ = scenes_listed
    pics = {f"{kind}_6": scene(kind, 6, (1280, 960)) for kind in ("city", "foliage")}
    pics |= {name: rgb for name, rgb in T.hard_negatives().items() if name in ("grass", "brick", "checker_12", "text")}
    edits = [
        next(v for v in T.variants()[family] if v.name == name)
        for family, name in (("rotation_3_5", "rot-4_trim"), ("crop_small", "crop10_3"), ("hue", "hue90"))
    ]
    for name, rgb in pics.items():
        for edit in edits:
            assert _found(index, edit, rgb) == set(), (name, edit.name)


def test_a_removed_entry_is_not_found_by_its_value_view():
    rgb = scenes()["foliage_4"]
    frame = media_signals(jpeg(rgb, 95))[0]
    index = ListIndex(local=False)
    index.add(entry_of(1, 1, frame))
    shifted = media_signals(jpeg(T.colour_shift(rgb, hue=90), 90), local=False)
    assert [(c.entry_id, c.view) for c in index.candidates(shifted, local=False)] == [(1, "value")]
    index.remove([1])
    assert index.candidates(shifted, local=False) == []


def test_the_half_step_points_follow_the_frame_s_own_and_leave_the_known_image_unchanged():
    """What an entry or a protected photo keeps (``as_known``: a prefix) is the frame's own points."""
    from detectors import localmatch
    from detectors.matching import fingerprint_of

    rgb = scenes()["city_3"]
    own = localmatch.fingerprint(rgb)
    query = fingerprint_of(rgb)
    assert len(query) > len(own)
    assert np.array_equal(query.as_known().descriptors, own.as_known().descriptors)
    assert np.array_equal(query.as_known().keypoints, own.as_known().keypoints)
