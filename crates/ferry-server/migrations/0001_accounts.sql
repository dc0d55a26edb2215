-- Ferry accounts schema, version 1 (applied by `ferry accounts migrate --config FILE`).
-- Every name starts with ferry_ so that the tables can live in a database shared with others.

-- Groups: defaults their members inherit (a member's own value, when set, wins).
CREATE TABLE ferry_groups (
    name          text PRIMARY KEY,
    root          text,
    permissions   text,            -- comma-separated: list,read,write,delete,rename,mkdir
    tls_required  boolean,
    max_sessions  integer,
    download_bps  bigint,
    upload_bps    bigint,
    quota_bytes   bigint,
    quota_files   bigint,
    allow_fxp     boolean
);

CREATE TABLE ferry_users (
    name          text PRIMARY KEY,
    password_hash text NOT NULL,   -- argon2id (PHC); bcrypt and SHA-crypt are rehashed at login
    group_name    text REFERENCES ferry_groups (name) ON UPDATE CASCADE ON DELETE SET NULL,
    root          text,            -- relative to the server's root, or absolute inside it
    permissions   text,
    tls_required  boolean,
    enabled       boolean NOT NULL DEFAULT true,
    expires_at    timestamptz,
    allow_from    text,            -- comma-separated addresses/CIDR ranges; NULL: anywhere
    max_sessions  integer,
    download_bps  bigint,
    upload_bps    bigint,
    quota_bytes   bigint,
    quota_files   bigint,
    allow_fxp     boolean,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- What each account uses, changed only by ferry_settle (and `ferry accounts recount`).
CREATE TABLE ferry_usage (
    account    text PRIMARY KEY,
    bytes      bigint NOT NULL DEFAULT 0,
    files      bigint NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Room held by uploads in progress, per node; a node refreshes seen_at while it lives, so the
-- reservations of a node that died stop counting after two minutes.
-- When two uploads of an account contend for the last of its quota, the older one wins: the
-- younger's reservation is revoked (it fails at its next reservation or before it commits) and
-- a confirmed one (about to commit) is never revoked.
CREATE TABLE ferry_reservations (
    node       text NOT NULL,
    id         bigint NOT NULL,
    account    text NOT NULL,
    bytes      bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked    boolean NOT NULL DEFAULT false,
    confirmed  boolean NOT NULL DEFAULT false,
    seen_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, id)
);
CREATE INDEX ferry_reservations_account ON ferry_reservations (account);

-- Settlements already applied: a retried one changes nothing.
CREATE TABLE ferry_settled (
    node text NOT NULL,
    id   bigint NOT NULL,
    at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (node, id)
);

-- Sessions logged in, on every node (for the per-account session limit).
CREATE TABLE ferry_sessions (
    id         bigserial PRIMARY KEY,
    account    text NOT NULL,
    node       text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    seen_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ferry_sessions_account ON ferry_sessions (account);
CREATE INDEX ferry_sessions_node ON ferry_sessions (node);

CREATE TABLE ferry_bans (
    ip     inet PRIMARY KEY,
    until  timestamptz NOT NULL,
    count  integer NOT NULL,
    node   text
);

CREATE TABLE ferry_logins (
    id      bigserial PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    account text NOT NULL,
    ip      inet,
    node    text NOT NULL,
    ok      boolean NOT NULL,
    reason  text
);
CREATE INDEX ferry_logins_account_at ON ferry_logins (account, at);

-- Reserves between p_need and p_want more bytes for upload (p_node, p_id) of p_account, within
-- p_quota: returns the bytes granted, 0 when not even p_need fits, -1 when this upload's
-- reservation was revoked by an older upload. The account's usage row is locked meanwhile, so
-- two nodes cannot both take the last of the quota.
CREATE FUNCTION ferry_reserve(p_node text, p_id bigint, p_account text, p_quota bigint, p_need bigint, p_want bigint)
RETURNS bigint AS $$
DECLARE
    used     bigint;
    mine     ferry_reservations%ROWTYPE;
    held     bigint;
    started  timestamptz;
    room     bigint;
    granted  bigint;
BEGIN
    INSERT INTO ferry_usage (account) VALUES (p_account) ON CONFLICT DO NOTHING;
    SELECT bytes INTO used FROM ferry_usage WHERE account = p_account FOR UPDATE;
    SELECT * INTO mine FROM ferry_reservations WHERE node = p_node AND id = p_id;
    IF FOUND AND mine.revoked THEN
        RETURN -1;
    END IF;
    started := COALESCE(mine.started_at, clock_timestamp());
    SELECT COALESCE(SUM(bytes), 0) INTO held FROM ferry_reservations
        WHERE account = p_account AND NOT revoked AND seen_at > now() - interval '2 minutes';
    room := p_quota - used - held;
    IF room < p_need THEN
        -- Only what older or confirmed uploads hold counts against this one.
        SELECT COALESCE(SUM(bytes), 0) INTO held FROM ferry_reservations
            WHERE account = p_account AND NOT revoked AND seen_at > now() - interval '2 minutes'
              AND (confirmed OR started_at <= started);
        room := p_quota - used - held;
        IF room < p_need THEN
            RETURN 0;
        END IF;
        UPDATE ferry_reservations SET revoked = true
            WHERE account = p_account AND NOT revoked AND NOT confirmed AND started_at > started;
    END IF;
    granted := LEAST(GREATEST(p_want, p_need), room);
    INSERT INTO ferry_reservations (node, id, account, bytes, started_at)
        VALUES (p_node, p_id, p_account, granted, started)
        ON CONFLICT (node, id) DO UPDATE SET bytes = ferry_reservations.bytes + granted, seen_at = now();
    RETURN granted;
END
$$ LANGUAGE plpgsql;

-- Marks upload (p_node, p_id) as about to commit: false when an older upload revoked it.
CREATE FUNCTION ferry_confirm(p_node text, p_id bigint, p_account text)
RETURNS boolean AS $$
DECLARE
    gone boolean;
BEGIN
    PERFORM 1 FROM ferry_usage WHERE account = p_account FOR UPDATE;
    UPDATE ferry_reservations SET confirmed = true
        WHERE node = p_node AND id = p_id RETURNING revoked INTO gone;
    RETURN NOT COALESCE(gone, false);
END
$$ LANGUAGE plpgsql;

-- Ends reservation (p_node, p_id) and changes p_account's usage by p_bytes and p_files, once.
CREATE FUNCTION ferry_settle(p_node text, p_id bigint, p_account text, p_bytes bigint, p_files bigint)
RETURNS boolean AS $$
BEGIN
    INSERT INTO ferry_settled (node, id) VALUES (p_node, p_id) ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    DELETE FROM ferry_reservations WHERE node = p_node AND id = p_id;
    INSERT INTO ferry_usage AS u (account, bytes, files)
        VALUES (p_account, GREATEST(p_bytes, 0), GREATEST(p_files, 0))
        ON CONFLICT (account) DO UPDATE
        SET bytes = GREATEST(u.bytes + p_bytes, 0), files = GREATEST(u.files + p_files, 0), updated_at = now();
    RETURN true;
END
$$ LANGUAGE plpgsql;

-- Claims one of p_max sessions of p_account on all nodes: the new session's id, or NULL.
CREATE FUNCTION ferry_claim_session(p_account text, p_node text, p_max integer)
RETURNS bigint AS $$
DECLARE
    n   integer;
    sid bigint;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('ferry_sessions:' || p_account));
    SELECT count(*) INTO n FROM ferry_sessions
        WHERE account = p_account AND seen_at > now() - interval '30 seconds';
    IF n >= p_max THEN
        RETURN NULL;
    END IF;
    INSERT INTO ferry_sessions (account, node) VALUES (p_account, p_node) RETURNING id INTO sid;
    RETURN sid;
END
$$ LANGUAGE plpgsql;
