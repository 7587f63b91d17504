-- One way for every process to follow the store: protected photos get a change log like the
-- lists' (0002), and neither log is emptied by the process that applied it any more. Each
-- process keeps the number of the last change it applied and reads the rows after it
-- (bot/follow.py); rows are pruned only once they are old (bot.store.changes), and the highest
-- number pruned is kept in the state table ('changes:<kind>:pruned'), so a process that fell
-- behind the pruning knows to load everything again instead of missing changes.
-- Replaces the 'protected:generation' counter (a bump said that something changed, not what).
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.

--   op 'add': photo_id was added or changed (a group photo moved with its group);
--   'remove': photo_id is gone (with its owner too, by the cascade); 'owner': owner_id's name
--   or notice choice changed. Ids only, never a name or a fingerprint.
CREATE TABLE protected_changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    op TEXT NOT NULL CHECK (op IN ('add', 'remove', 'owner')),
    owner_id INTEGER NOT NULL,
    photo_id INTEGER,
    CHECK ((op IN ('add', 'remove')) = (photo_id IS NOT NULL))
) STRICT;

CREATE TRIGGER protected_photos_added AFTER INSERT ON protected_photos BEGIN
    INSERT INTO protected_changes (op, owner_id, photo_id) VALUES ('add', NEW.owner_id, NEW.id);
END;
CREATE TRIGGER protected_photos_changed AFTER UPDATE ON protected_photos BEGIN
    INSERT INTO protected_changes (op, owner_id, photo_id) VALUES ('add', NEW.owner_id, NEW.id);
END;
CREATE TRIGGER protected_photos_removed AFTER DELETE ON protected_photos BEGIN
    INSERT INTO protected_changes (op, owner_id, photo_id) VALUES ('remove', OLD.owner_id, OLD.id);
END;
CREATE TRIGGER protected_owners_changed AFTER UPDATE ON protected_owners BEGIN
    INSERT INTO protected_changes (op, owner_id) VALUES ('owner', NEW.id);
END;

DELETE FROM state WHERE key = 'protected:generation';
