-- Hash lists that survive evasion and scale: what list matching needs beyond an entry's
-- whole-image hashes, and a log of list changes so a running bot follows changes made
-- by `vigil hash` (another process) without reloading everything.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.

-- Per entry, signals of its image beyond the entry's own hashes: the hashes of its
-- trimmed views (the picture inside borders or screenshot chrome, as JSON) and its
-- local-feature fingerprint (keypoint positions and descriptors as base64, never
-- pixels). Removed with the entry.
CREATE TABLE entry_features (
    entry_id INTEGER PRIMARY KEY REFERENCES entries (id) ON DELETE CASCADE,
    views TEXT NOT NULL DEFAULT '[]'
        CHECK (length(views) <= 2048 AND json_valid(views) AND json_type(views) = 'array'),
    fingerprint TEXT
        CHECK (fingerprint IS NULL OR (length(fingerprint) BETWEEN 16 AND 262144
               AND NOT fingerprint GLOB '*[^A-Za-z0-9+/=]*')),
    added_at TEXT NOT NULL CHECK (length(added_at) <= 40)
) STRICT;

-- Every change to lists and entries, in order, written by the triggers below whoever
-- makes it (the bot, `vigil hash`, a purge). Ids only, never hashes. The running bot
-- applies the rows after the last one it saw and deletes what it has applied.
--   op 'add': entry_id was added (or its features were); 'remove': entry_id is gone;
--   'list': list_id was created or changed; 'unlist': list_id is gone.
CREATE TABLE list_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove', 'list', 'unlist')),
    list_id INTEGER NOT NULL,
    entry_id INTEGER,
    CHECK ((op IN ('add', 'remove')) = (entry_id IS NOT NULL))
) STRICT;

CREATE TRIGGER entries_added AFTER INSERT ON entries BEGIN
    INSERT INTO list_changes (op, list_id, entry_id) VALUES ('add', NEW.list_id, NEW.id);
END;
CREATE TRIGGER entries_removed AFTER DELETE ON entries BEGIN
    INSERT INTO list_changes (op, list_id, entry_id) VALUES ('remove', OLD.list_id, OLD.id);
END;
CREATE TRIGGER entries_changed AFTER UPDATE ON entries BEGIN
    INSERT INTO list_changes (op, list_id, entry_id) VALUES ('add', NEW.list_id, NEW.id);
END;
CREATE TRIGGER entry_features_added AFTER INSERT ON entry_features BEGIN
    INSERT INTO list_changes (op, list_id, entry_id)
        SELECT 'add', list_id, id FROM entries WHERE id = NEW.entry_id;
END;
CREATE TRIGGER entry_features_changed AFTER UPDATE ON entry_features BEGIN
    INSERT INTO list_changes (op, list_id, entry_id)
        SELECT 'add', list_id, id FROM entries WHERE id = NEW.entry_id;
END;
CREATE TRIGGER lists_added AFTER INSERT ON lists BEGIN
    INSERT INTO list_changes (op, list_id) VALUES ('list', NEW.id);
END;
CREATE TRIGGER lists_changed AFTER UPDATE ON lists BEGIN
    INSERT INTO list_changes (op, list_id) VALUES ('list', NEW.id);
END;
CREATE TRIGGER lists_removed AFTER DELETE ON lists BEGIN
    INSERT INTO list_changes (op, list_id) VALUES ('unlist', OLD.id);
END;
