-- Private reports (issue 13): a member's report of a message in a group, and the members whose
-- reports a group's admins chose to ignore. Ids only: never the message's text or its image.
-- One report per message (a repeat, by the same member or another, adds no second alert); every
-- member who reported it is kept in report_reporters, which is also what the per-member rate
-- limit counts. No foreign key to groups: a report outlives a group's change of id as history does.
-- Runs inside one transaction opened by bot/store/db.py: no BEGIN/COMMIT here.
CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    message_id TEXT NOT NULL CHECK (length(message_id) BETWEEN 1 AND 255),
    reporter_id TEXT NOT NULL CHECK (length(reporter_id) BETWEEN 1 AND 255),
    source TEXT NOT NULL CHECK (source IN ('reply', 'link', 'homeserver')),
    reported_at TEXT NOT NULL CHECK (length(reported_at) <= 40),
    alerted_at TEXT CHECK (length(alerted_at) <= 40),
    state TEXT NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'deleted', 'blocked', 'dismissed')),
    decided_by TEXT CHECK (length(decided_by) <= 255),
    decided_at TEXT CHECK (length(decided_at) <= 40),
    UNIQUE (platform, chat_id, message_id)
) STRICT;
CREATE INDEX reports_by_chat ON reports (platform, chat_id, reported_at);
CREATE INDEX reports_by_at ON reports (reported_at);

CREATE TABLE report_reporters (
    report_id INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    reporter_id TEXT NOT NULL CHECK (length(reporter_id) BETWEEN 1 AND 255),
    reported_at TEXT NOT NULL CHECK (length(reported_at) <= 40),
    PRIMARY KEY (report_id, reporter_id)
) STRICT;
CREATE INDEX report_reporters_by_member ON report_reporters (platform, chat_id, reporter_id, reported_at);
CREATE INDEX report_reporters_by_user ON report_reporters (platform, reporter_id);

CREATE TABLE ignored_reporters (
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    chat_id TEXT NOT NULL CHECK (length(chat_id) BETWEEN 1 AND 255),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    added_by TEXT NOT NULL CHECK (length(added_by) BETWEEN 1 AND 255),
    added_at TEXT NOT NULL CHECK (length(added_at) <= 40),
    PRIMARY KEY (platform, chat_id, user_id)
) STRICT;

-- each admin told of a report: after a stop partway through the alerts, only the others are told
CREATE TABLE report_alerts (
    report_id INTEGER NOT NULL REFERENCES reports (id) ON DELETE CASCADE,
    platform TEXT NOT NULL CHECK (platform IN ('telegram', 'matrix')),
    user_id TEXT NOT NULL CHECK (length(user_id) BETWEEN 1 AND 255),
    sent_at TEXT NOT NULL CHECK (length(sent_at) <= 40),
    PRIMARY KEY (report_id, user_id)
) STRICT;
CREATE INDEX report_alerts_by_user ON report_alerts (platform, user_id);
-- reports not yet alerted, resumed at start
CREATE INDEX reports_unalerted ON reports (reported_at) WHERE alerted_at IS NULL;
