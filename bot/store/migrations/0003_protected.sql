-- Protected photos: local-feature fingerprints of people's photos, so that a manipulated
-- copy (an AI "undress" edit keeps the face, hair, pose and background) can be traced to
-- the person in it. Never the photo: keypoint positions and descriptors only, as base64.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.

-- Whose photos they are. A member registered them (or posted them in a group that keeps
-- group photos): platform and user_id say who. The operator added them from the command
-- line: kind 'operator', no platform account, known by name (unique among operator owners).
CREATE TABLE protected_owners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('member', 'operator')),
    platform TEXT CHECK (platform IN ('telegram', 'matrix')),
    user_id TEXT CHECK (length(user_id) BETWEEN 1 AND 255),
    name TEXT NOT NULL CHECK (length(name) BETWEEN 1 AND 256),
    -- told privately when a manipulated copy is removed: opt-in, off by default
    notify INTEGER NOT NULL DEFAULT 0 CHECK (notify IN (0, 1)),
    -- where the notice goes: the member themselves, or a user the operator named
    notify_platform TEXT CHECK (notify_platform IN ('telegram', 'matrix')),
    notify_user TEXT CHECK (length(notify_user) BETWEEN 1 AND 255),
    created_at TEXT NOT NULL CHECK (length(created_at) <= 40),
    updated_at TEXT NOT NULL CHECK (length(updated_at) <= 40),
    CHECK ((kind = 'member' AND platform IS NOT NULL AND user_id IS NOT NULL)
        OR (kind = 'operator' AND platform IS NULL AND user_id IS NULL)),
    CHECK ((notify_platform IS NULL) = (notify_user IS NULL))
) STRICT;
CREATE UNIQUE INDEX protected_owners_member ON protected_owners (platform, user_id) WHERE kind = 'member';
CREATE UNIQUE INDEX protected_owners_operator ON protected_owners (name) WHERE kind = 'operator';

-- One photo's fingerprint. source: 'private' (the member sent it to Vigil), 'group' (posted
-- in a group that keeps group photos; deleted at expires_at), 'operator' (vigil protect add).
CREATE TABLE protected_photos (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    owner_id INTEGER NOT NULL REFERENCES protected_owners (id) ON DELETE CASCADE,
    source TEXT NOT NULL CHECK (source IN ('private', 'group', 'operator')),
    platform TEXT CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT CHECK (length(chat_id) BETWEEN 1 AND 255),
    label TEXT CHECK (length(label) <= 200),
    -- the whole-image PDQ hash: an unchanged re-post is told apart from an edited copy
    pdq TEXT CHECK (length(pdq) = 64 AND NOT pdq GLOB '*[^0-9a-f]*'),
    fingerprint TEXT NOT NULL
        CHECK (length(fingerprint) BETWEEN 16 AND 262144 AND NOT fingerprint GLOB '*[^A-Za-z0-9+/=]*'),
    added_at TEXT NOT NULL CHECK (length(added_at) <= 40),
    expires_at TEXT CHECK (length(expires_at) <= 40),
    CHECK ((source = 'group') = (chat_id IS NOT NULL AND expires_at IS NOT NULL)),
    CHECK ((chat_id IS NULL) = (platform IS NULL))
) STRICT;
CREATE INDEX protected_photos_by_owner ON protected_photos (owner_id);
CREATE INDEX protected_photos_expiring ON protected_photos (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX protected_photos_by_group ON protected_photos (platform, chat_id) WHERE chat_id IS NOT NULL;
