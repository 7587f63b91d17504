"""Local-feature matching (detectors.localmatch): edited copies are traced to their
source, distinct, flat, repetitive and same-scene images are not."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from detectors import localmatch as lm
from detectors.errors import BadEntryIds, BadFingerprint, BadImageArray, VigilError
from tests.support import transforms as tf

# Everyday photos from tests/images; each family's edits must be traced on all of them.
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


@pytest.fixture(scope="module")
def photos() -> dict[str, np.ndarray]:
    return tf.photos()


@pytest.fixture(scope="module")
def known(photos) -> dict[str, lm.Fingerprint]:
    return {name: lm.fingerprint(rgb, query=False) for name, rgb in photos.items()}


@pytest.fixture(scope="module")
def families() -> dict[str, list[tf.Variant]]:
    return tf.variants()


@pytest.fixture(scope="module")
def negatives() -> dict[str, np.ndarray]:
    return tf.hard_negatives()


@pytest.fixture(scope="module")
def index(known, negatives) -> tuple[lm.LocalIndex, dict[int, str]]:
    """Every photo and every flat or repetitive image, keyed 0, 1, ..."""
    idx = lm.LocalIndex()
    names: dict[int, str] = {}
    items = list(known.items()) + [(n, lm.fingerprint(rgb, query=False)) for n, rgb in negatives.items()]
    for key, (name, fp) in enumerate(items):
        idx.add(key, fp)
        names[key] = name
    return idx, names


def _key_of(names: dict[int, str], name: str) -> int:
    return next(k for k, n in names.items() if n == name)


# --- every family is traced ----------------------------------------------------------

# undress-like edits have their own test below, on photos of people and scenes
FAMILIES = (
    "jpeg",
    "resize",
    "mirror",
    "rotate90",
    "small_rotation",
    "crop_small",
    "crop_large",
    "border",
    "screenshot",
    "overlay",
    "colour",
    "webp",
)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_edit_of_a_family_is_traced_to_its_source_through_the_index(family, families, photos, index):
    idx, names = index
    missed, wrong = [], []
    for name in PHOTOS:
        if family == "screenshot" and name == "rocket":
            continue  # a smooth sky and smoke at 0.43 scale: few corners left (see the bench)
        for variant in families[family]:
            found = idx.search(lm.fingerprint(variant(photos[name])))
            if not found or names[found[0].key] != name:
                missed.append(f"{variant.name}:{name}")
            wrong += [f"{variant.name}:{name}->{names[m.key]}" for m in found if names[m.key] != name]
    assert not wrong
    assert not missed


def test_a_mirrored_copy_is_reported_as_mirrored_and_others_are_not(photos, known):
    rgb = photos["coffee"]
    assert lm.verify(lm.fingerprint(tf.mirror(rgb)), known["coffee"]).mirrored is True
    assert lm.verify(lm.fingerprint(tf.crop(rgb, 0.1, 1)), known["coffee"]).mirrored is False
    # without the mirror descriptors a mirrored copy is not traced: they are what finds it
    assert lm.verify(lm.fingerprint(tf.mirror(rgb)), known["coffee"], mirror=False) is None


def _apply(t: tuple[float, ...], x: float, y: float) -> tuple[float, float]:
    return t[0] * x + t[1] * y + t[2], t[3] * x + t[4] * y + t[5]


def test_the_transform_maps_the_query_onto_where_it_came_from(photos, known):
    rgb = photos["astronaut"]  # 512 x 512: frame 1000 x 1000
    cropped = rgb[100:400, 50:450]  # 400 x 300: its frame is 1000 x 750, scale 0.4
    match = lm.verify(lm.fingerprint(cropped), known["astronaut"])
    k = 1000 / 512
    for qx, qy, sx, sy in ((0, 0, 50, 100), (1000, 750, 450, 400), (500, 375, 250, 250)):
        x, y = _apply(match.transform, qx, qy)
        assert abs(x - sx * k) < 6 and abs(y - sy * k) < 6
    # the whole query lies in the source, which keeps 46 % of its area
    assert match.match_fraction > 0.75
    assert 0.3 < match.source_fraction <= 0.46

    mirrored = lm.verify(lm.fingerprint(np.ascontiguousarray(cropped[:, ::-1])), known["astronaut"])
    assert mirrored.mirrored
    x, y = _apply(mirrored.transform, 0, 0)  # the query's left edge is the crop's right edge
    assert abs(x - 450 * k) < 6 and abs(y - 100 * k) < 6


def test_a_quarter_turn_is_found_as_a_rotation(photos, known):
    match = lm.verify(lm.fingerprint(tf.rotate90(photos["chelsea"], 1)), known["chelsea"])
    angle = np.degrees(np.arctan2(match.transform[3], match.transform[0]))
    assert abs(abs(angle) - 90) < 2
    assert abs(np.hypot(match.transform[0], match.transform[3]) - 1) < 0.02


# --- undress-like edits ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["astronaut", "coffee", "camera", "faces"])
def test_undress_like_edits_are_traced_to_their_photo(name, photos, families, index):
    idx, names = index
    for variant in families["undress"]:
        found = idx.search(lm.fingerprint(variant(photos[name])))
        assert [names[m.key] for m in found] == [name], variant.name


def test_an_edit_replacing_half_the_picture_still_covers_the_rest(photos, known):
    rgb = photos["astronaut"]
    edit = tf.undress_like(rgb, region="centre", share=0.5, fill="noise", side=960, quality=75, seed=5)
    match = lm.verify(lm.fingerprint(edit), known["astronaut"])
    assert match is not None and match.inliers >= 30
    # about half of each picture is shared, and the measure says so
    assert 0.3 < match.source_fraction < 0.65 and 0.3 < match.match_fraction < 0.65


def test_shared_fractions_follow_borders_and_screenshots(photos, known):
    rgb = photos["camera"]
    framed = lm.verify(lm.fingerprint(tf.border(rgb, 0.2, (255, 255, 255))), known["camera"])
    assert 0.35 < framed.match_fraction < 0.6 and framed.source_fraction > 0.8  # truth: 0.51 and 1
    shot = lm.verify(lm.fingerprint(tf.screenshot(rgb)), known["camera"])
    assert shot.match_fraction < 0.45 and shot.source_fraction > 0.75  # truth: 0.40 and 1


# --- what must not match -----------------------------------------------------------------


def test_distinct_photos_do_not_match_each_other(photos, known):
    queries = {name: lm.fingerprint(rgb) for name, rgb in photos.items()}
    matched = [(a, b) for a, q in queries.items() for b, k in known.items() if a != b and lm.verify(q, k)]
    assert matched == []


def test_edits_of_one_photo_are_never_traced_to_another(photos, families, index):
    idx, names = index
    wrong = []
    for name in ("camera", "motorcycle", "moon", "coins"):
        for family in ("crop_large", "screenshot", "overlay"):
            for variant in families[family]:
                found = idx.search(lm.fingerprint(variant(photos[name])))
                wrong += [(variant.name, name, names[m.key]) for m in found if names[m.key] != name]
    assert wrong == []


def test_flat_and_repetitive_images_match_nothing(negatives, index):
    idx, names = index
    found = {}
    for name, rgb in negatives.items():
        for variant_name, img in (("as is", rgb), ("jpeg", tf.jpeg(rgb, 70)), ("crop", tf.crop(rgb, 0.25, 3))):
            hits = [names[m.key] for m in idx.search(lm.fingerprint(img), min_fraction=0.0)]
            # itself is allowed (an edited copy of a listed texture is a copy); nothing else
            others = [h for h in hits if h != name]
            if others:
                found[(name, variant_name)] = others
    assert found == {}


def test_flat_images_get_an_empty_fingerprint():
    flat = np.full((480, 640, 3), 128, np.uint8)
    fp = lm.fingerprint(flat)
    assert len(fp) == 0 and (fp.width, fp.height) == (1000, 750)
    assert lm.verify(fp, fp) is None


def test_the_same_scene_from_another_viewpoint_is_not_traced():
    # Decision: a stereo pair is two photos of one scene taken from different places. It
    # shares content but no pixels, so it is not an edited copy and must not be traced.
    left, right = tf.stereo_pair()
    known_left, known_right = lm.fingerprint(left, query=False), lm.fingerprint(right, query=False)
    assert lm.verify(lm.fingerprint(right), known_left) is None
    assert lm.verify(lm.fingerprint(left), known_right) is None
    # while an edited copy of one view is
    assert lm.verify(lm.fingerprint(tf.crop(right, 0.2, 4)), known_right) is not None


def test_two_thirds_of_one_panorama_do_not_match(photos):
    for name in ("rocket", "coffee", "motorcycle"):
        a, b = tf.panorama_thirds(photos[name])
        assert lm.verify(lm.fingerprint(a), lm.fingerprint(b, query=False)) is None
        assert lm.verify(lm.fingerprint(b), lm.fingerprint(a, query=False)) is None


# --- the index ---------------------------------------------------------------------------


def test_remove_forgets_an_image_and_add_replaces(photos, known):
    idx = lm.LocalIndex()
    idx.add(7, known["coffee"])
    idx.add(8, known["rocket"])
    query = lm.fingerprint(tf.crop(photos["coffee"], 0.2, 2))
    assert [m.key for m in idx.search(query)] == [7]
    assert len(idx) == 2 and 7 in idx

    assert idx.remove(7) is True
    assert idx.remove(7) is False
    assert idx.search(query) == []
    assert len(idx) == 1 and 7 not in idx

    idx.add(8, known["coffee"])  # the same key again: now holds the coffee
    assert [m.key for m in idx.search(query)] == [8]
    assert idx.search(lm.fingerprint(photos["rocket"])) == []
    assert len(idx) == 1


def test_many_adds_and_removes_keep_the_index_exact(photos, known):
    idx = lm.LocalIndex()
    names = list(known)
    for round_ in range(3):  # enough adds to merge segments and removes to rebuild them
        for i, name in enumerate(names):
            idx.add(round_ * 100 + i, known[name])
    for i in range(len(names)):
        assert idx.remove(i) and idx.remove(100 + i)
    assert len(idx) == len(names)
    found = idx.search(lm.fingerprint(tf.jpeg(photos["chelsea"], 60)))
    assert [m.key for m in found] == [200 + names.index("chelsea")]
    assert idx.fingerprint_of(200) is not None and idx.fingerprint_of(0) is None


def test_add_many_equals_adding_one_by_one(photos, known):
    one, many = lm.LocalIndex(), lm.LocalIndex()
    for i, fp in enumerate(known.values()):
        one.add(i, fp)
    many.add_many(enumerate(known.values()))
    query = lm.fingerprint(tf.border(photos["astronaut"], 0.2, (255, 255, 255)))
    assert one.search(query) == many.search(query)
    assert len(one) == len(many)


def test_an_index_keeps_the_compact_form_and_reports_its_memory(photos):
    idx = lm.LocalIndex()
    empty = idx.memory_bytes
    fp = lm.fingerprint(photos["astronaut"])  # a query fingerprint: 600 points and mirror
    idx.add(1, fp)
    kept = idx.fingerprint_of(1)
    assert len(kept) == lm.KNOWN_KEYPOINTS and kept.mirror_descriptors is None
    np.testing.assert_array_equal(kept.descriptors, fp.descriptors[: lm.KNOWN_KEYPOINTS])
    assert idx.memory_bytes - empty > len(kept.to_bytes())


def test_searches_run_while_the_index_changes(photos, known):
    idx = lm.LocalIndex()
    idx.add(1, known["astronaut"])
    query = lm.fingerprint(tf.crop(photos["astronaut"], 0.1, 3))
    errors, results = [], []

    def searcher() -> None:
        try:
            for _ in range(15):
                results.append([m.key for m in idx.search(query)])
        except Exception as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(3)]
    for t in threads:
        t.start()
    for i, fp in enumerate(list(known.values()) * 2):
        idx.add(100 + i, fp)
        if i % 3 == 0:
            idx.remove(100 + i)
    for t in threads:
        t.join()
    assert errors == []
    # the astronaut stays findable throughout; its copies (added later) may join it
    assert all(r and r[0] in {1} | {100 + i for i in range(40)} for r in results)
    assert all(1 in r for r in results)


def test_search_and_add_refuse_wrong_arguments(known):
    idx = lm.LocalIndex()
    fp = known["coffee"]
    with pytest.raises(BadEntryIds):
        idx.add("7", fp)
    with pytest.raises(BadEntryIds):
        idx.add(-1, fp)
    with pytest.raises(BadFingerprint):
        idx.add(1, b"not a fingerprint")
    with pytest.raises(BadFingerprint):
        idx.search("query")
    with pytest.raises(ValueError):
        idx.search(fp, min_fraction=1.5)
    with pytest.raises(ValueError):
        idx.search(fp, limit=0)
    assert len(idx) == 0


# --- fingerprints ---------------------------------------------------------------------------


def test_fingerprint_bytes_round_trip_exactly(photos):
    for fp in (lm.fingerprint(photos["chelsea"]), lm.fingerprint(photos["chelsea"], query=False)):
        data = fp.to_bytes()
        back = lm.Fingerprint.from_bytes(data)
        for field in ("keypoints", "descriptors", "angles", "octaves"):
            np.testing.assert_array_equal(getattr(back, field), getattr(fp, field))
        assert (back.width, back.height, back.source_side) == (fp.width, fp.height, fp.source_side)
        if fp.mirror_descriptors is None:
            assert back.mirror_descriptors is None
            assert len(data) == 17 + 38 * len(fp)
        else:
            np.testing.assert_array_equal(back.mirror_descriptors, fp.mirror_descriptors)
            assert len(data) == 17 + 70 * len(fp)
        assert back.to_bytes() == data


def test_fingerprints_hold_no_pixels_and_are_deterministic(photos):
    rgb = photos["rocket"]
    a, b = lm.fingerprint(rgb), lm.fingerprint(rgb.copy())
    assert a.to_bytes() == b.to_bytes()
    assert a.keypoints.dtype == np.float32 and a.keypoints.shape == (len(a), 2)
    assert a.descriptors.dtype == np.uint8 and a.descriptors.shape == (len(a), 32)
    assert max(a.width, a.height) == lm.FRAME
    assert 0 < len(a) <= lm.QUERY_KEYPOINTS and len(lm.fingerprint(rgb, query=False)) <= lm.KNOWN_KEYPOINTS


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:10],
        lambda b: b[:-1],
        lambda b: b"XYZ" + b[3:],
        lambda b: b[:3] + bytes([9]) + b[4:],
        lambda b: b + b"\0",
    ],
    ids=["short header", "truncated", "wrong marker", "unknown version", "trailing bytes"],
)
def test_damaged_fingerprint_bytes_are_refused(damage, known):
    with pytest.raises(BadFingerprint) as info:
        lm.Fingerprint.from_bytes(damage(known["coffee"].to_bytes()))
    assert "recompute it" in str(info.value)


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.zeros((0, 0, 3), np.uint8), "empty"),
        (np.zeros((100, 100), np.uint8), "grey"),
        (np.zeros((100, 100, 4), np.uint8), "shape"),
        (np.zeros((100, 100, 3), np.float32), "dtype"),
        ([[1, 2, 3]], "numpy array"),
    ],
    ids=["empty", "greyscale", "rgba", "float", "list"],
)
def test_bad_arrays_get_a_clear_error(bad, words):
    with pytest.raises(BadImageArray) as info:
        lm.fingerprint(bad)
    assert isinstance(info.value, VigilError) and isinstance(info.value, ValueError)
    assert words in str(info.value) and "(height, width, 3)" in str(info.value)


def test_tiny_images_get_an_empty_fingerprint_that_matches_nothing(known):
    for shape in ((1, 1, 3), (3, 512, 3), (20, 20, 3)):
        fp = lm.fingerprint(np.full(shape, 200, np.uint8))
        assert len(fp) == 0
        assert lm.verify(fp, known["coffee"]) is None and lm.verify(known["coffee"], fp) is None
        idx = lm.LocalIndex()
        idx.add(1, fp)
        assert idx.search(fp) == [] and idx.search(known["coffee"]) == []
        assert lm.Fingerprint.from_bytes(fp.to_bytes()).width == fp.width


def test_a_fingerprint_with_inconsistent_arrays_is_refused(known):
    fp = known["coffee"]
    broken = lm.Fingerprint(
        fp.keypoints[:-1], fp.descriptors, fp.width, fp.height, fp.angles, fp.octaves, fp.source_side
    )
    with pytest.raises(BadFingerprint):
        lm.verify(broken, fp)
    with pytest.raises(BadFingerprint):
        lm.LocalIndex().add(1, broken)


def test_an_image_listed_many_times_stays_findable(photos, known):
    # more copies than MAX_BUCKET: their shared words make long posting lists, read at a stride
    idx = lm.LocalIndex()
    rgb = photos["camera"]
    copies = 2 * lm.MAX_BUCKET + 6
    idx.add_many((i, lm.fingerprint(tf.jpeg(rgb, 40 + i % 55), query=False)) for i in range(copies))
    idx.add(1000, known["coffee"])
    found = idx.search(lm.fingerprint(tf.crop(rgb, 0.2, 9)), limit=3)
    assert len(found) == 3 and all(m.key < copies for m in found)
    assert [m.key for m in idx.search(lm.fingerprint(tf.crop(photos["coffee"], 0.2, 9)))] == [1000]
