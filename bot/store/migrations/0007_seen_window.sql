-- The seen-images window (bot/sweep.py): for each image Vigil scanned, the ids and fingerprints it
-- needs to find that image again when a block entry or a protected photo is added later; never
-- pixels. Kept [sweep] window_hours after it was seen, bounded per chat and in total
-- (prune_seen). ``event``: the durable form of the post (bot.events.MediaPosted.payload, ids and
-- the media reference, as the inbox keeps it), so a hit is handled again as if just posted.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE seen_images (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 255),
    variant TEXT NOT NULL DEFAULT '' CHECK (length(variant) <= 200),
    sender_id TEXT NOT NULL CHECK (length(sender_id) BETWEEN 1 AND 255),
    posted_at TEXT NOT NULL CHECK (length(posted_at) <= 40),
    seen_at TEXT NOT NULL CHECK (length(seen_at) <= 40),
    sha256 TEXT CHECK (sha256 IS NULL OR length(sha256) = 64),
    event TEXT NOT NULL CHECK (length(event) <= 8192 AND json_valid(event)),
    UNIQUE (platform, chat_id, message_id, variant)
) STRICT;
CREATE INDEX seen_images_chat ON seen_images (platform, chat_id, id);
CREATE INDEX seen_images_seen ON seen_images (seen_at);
CREATE INDEX seen_images_sender ON seen_images (platform, sender_id);

-- one row per scanned frame of an image (an animation has several): its hashes
CREATE TABLE seen_frames (
    image_id INTEGER NOT NULL REFERENCES seen_images (id) ON DELETE CASCADE,
    frame INTEGER NOT NULL CHECK (frame BETWEEN 0 AND 1000),
    pdq TEXT CHECK (pdq IS NULL OR length(pdq) = 64),
    pdq_quality INTEGER CHECK (pdq_quality IS NULL OR pdq_quality BETWEEN 0 AND 100),
    phash TEXT CHECK (phash IS NULL OR length(phash) BETWEEN 1 AND 64),
    PRIMARY KEY (image_id, frame)
) STRICT;

-- the frame's local-feature fingerprint (base64, as protected photos' are), apart from the hashes
-- so that a sweep by hashes reads small rows only
CREATE TABLE seen_prints (
    image_id INTEGER NOT NULL REFERENCES seen_images (id) ON DELETE CASCADE,
    frame INTEGER NOT NULL CHECK (frame BETWEEN 0 AND 1000),
    fingerprint TEXT NOT NULL CHECK (length(fingerprint) <= 87384),
    PRIMARY KEY (image_id, frame)
) STRICT;
