-- The contact-tracing backend's tables that the export reads. Production has them
-- already, so every statement tolerates an existing object.

CREATE TABLE IF NOT EXISTS devices (
    uuid         uuid PRIMARY KEY,
    phone_number text NOT NULL,
    platform     text,
    os_version   text,
    app_version  text,
    model        text,
    created_at   timestamptz
);
CREATE INDEX IF NOT EXISTS devices_phone_number_idx ON devices (phone_number);

CREATE TABLE IF NOT EXISTS gps_events (
    uuid              uuid,
    time_from         timestamptz,
    time_to           timestamptz,
    latitude          double precision,
    longitude         double precision,
    accuracy          real,
    speed             real,
    speed_accuracy    real,
    altitude          real,
    altitude_accuracy real
);
CREATE INDEX IF NOT EXISTS gps_events_uuid_time_from_idx ON gps_events (uuid, time_from);

CREATE TABLE IF NOT EXISTS bluetooth_events (
    uuid        uuid,
    paired_uuid uuid,
    paired_time timestamptz,
    rssi        integer,
    tx_power    integer
);
CREATE INDEX IF NOT EXISTS bluetooth_events_uuid_paired_time_idx
    ON bluetooth_events (uuid, paired_time);
