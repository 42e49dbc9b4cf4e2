-- Owned by insight: one row for every accepted order and every completed download.

CREATE TABLE IF NOT EXISTS access_log (
    id                  bigserial PRIMARY KEY,
    logged_at           timestamptz NOT NULL DEFAULT now(),
    action              text NOT NULL CHECK (action IN ('order', 'download')),
    request_id          uuid NOT NULL,
    phone_number        text NOT NULL,
    person_name         text NOT NULL,
    person_id           text,
    person_organization text,
    organization        text NOT NULL,
    legal_means         text NOT NULL
);
CREATE INDEX IF NOT EXISTS access_log_request_id_idx ON access_log (request_id);
CREATE INDEX IF NOT EXISTS access_log_phone_number_idx ON access_log (phone_number, logged_at);
