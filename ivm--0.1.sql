-- ivm 0.1: incrementally maintained materialized views.
\echo Use "CREATE EXTENSION ivm" to load this file. \quit

-- Internal state of the views (aggregate state, key locks, internal views).
CREATE SCHEMA ivm_state;
GRANT USAGE, CREATE ON SCHEMA ivm_state TO PUBLIC;

CREATE SEQUENCE ivm.internal_seq;
GRANT USAGE ON SEQUENCE ivm.internal_seq TO PUBLIC;

-- One row per incremental view.
CREATE TABLE ivm.views (
    viewid      oid PRIMARY KEY,          -- the view table
    name        text NOT NULL,            -- schema-qualified, as created
    query       text NOT NULL,            -- the query as the user wrote it
    definition  text NOT NULL,            -- normalized: every name qualified
    mode        text NOT NULL DEFAULT 'immediate',
    level       int NOT NULL,             -- 1 + the highest level of the views it reads
    plan        text NOT NULL,            -- compiled operator plan
    internal    boolean NOT NULL DEFAULT false,  -- a subquery of another view
    parent      oid,                      -- for internal views: the view owning it
    owner       regrole NOT NULL DEFAULT current_user::regrole,
    created     timestamptz NOT NULL DEFAULT now()
);

-- Which relations (tables and other views) each view reads.
CREATE TABLE ivm.dependencies (
    viewid  oid NOT NULL REFERENCES ivm.views ON DELETE CASCADE,
    relid   oid NOT NULL,
    is_view boolean NOT NULL,
    PRIMARY KEY (viewid, relid)
);
CREATE INDEX ON ivm.dependencies (relid);

GRANT SELECT, INSERT, UPDATE, DELETE ON ivm.views, ivm.dependencies TO PUBLIC;

CREATE FUNCTION ivm.create_view(name text, query text, mode text DEFAULT 'immediate')
RETURNS regclass AS 'MODULE_PATHNAME', 'ivm_create_view' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION ivm.create_view(text, text, text) IS
    'creates a table holding the result of query, kept up to date incrementally';

CREATE FUNCTION ivm.drop_view(name text)
RETURNS void AS 'MODULE_PATHNAME', 'ivm_drop_view' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION ivm.refresh(name text)
RETURNS bigint AS 'MODULE_PATHNAME', 'ivm_refresh' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION ivm.verify(name text)
RETURNS bigint AS 'MODULE_PATHNAME', 'ivm_verify' LANGUAGE C VOLATILE STRICT;

CREATE FUNCTION ivm.explain(name text)
RETURNS text AS 'MODULE_PATHNAME', 'ivm_explain' LANGUAGE C STABLE STRICT;

CREATE FUNCTION ivm.capture() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_capture' LANGUAGE C;

CREATE FUNCTION ivm.guard() RETURNS trigger
AS 'MODULE_PATHNAME', 'ivm_guard' LANGUAGE C;
