#!/usr/bin/env bash
# testdata/dbbench/cluster.sh DIR: a PostgreSQL cluster for the database
# bench under DIR (made once, kept: later runs reuse it), started on a
# loopback port, holding "pombench", a POM-like database of about 1 GB
# (contacts, call history, DNC, campaigns: text and numbers, indexes).
# Prints "PORT PASSFILE" on its last line. `cluster.sh DIR stop` stops it
# (kept on disk for the next run).
set -euo pipefail
dir=$1
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "${2:-}" = stop ]; then
	as_pg "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
	exit 0
fi
mkdir -p "$dir"
port=$(cat "$dir/port" 2>/dev/null || echo $((20000 + RANDOM % 20000)))
if [ ! -f "$dir/data/PG_VERSION" ]; then
	rm -rf "$dir/data"
	[ "$(id -u)" = 0 ] && chown postgres: "$dir"
	echo bench >"$dir/pw"; [ "$(id -u)" = 0 ] && chown postgres: "$dir/pw"
	as_pg "$bin/initdb" -D "$dir/data" --username=postgres --auth=scram-sha-256 --pwfile="$dir/pw" --encoding=UTF8 --no-sync >/dev/null
	echo "$port" >"$dir/port"
fi
echo "127.0.0.1:$port:*:postgres:bench" >"$dir/pgpass"; chmod 600 "$dir/pgpass"
if ! as_pg "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
	as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c shared_buffers=256MB -c max_wal_size=4GB" start >/dev/null
fi
export PGPASSFILE=$dir/pgpass
psql() { /usr/bin/psql --host=127.0.0.1 --port="$port" --username=postgres --no-password --no-psqlrc --set=ON_ERROR_STOP=1 --quiet "$@"; }
if [ "$(psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname='pombench'")" != 1 ] || [ ! -f "$dir/ready" ]; then
	echo "dbbench: creating the ~1 GB database pombench once (a few minutes)" >&2
	psql -d postgres -c 'DROP DATABASE IF EXISTS pombench' -c 'CREATE DATABASE pombench'
	psql -d pombench <<'SQL'
CREATE TABLE cmp_campaign (id bigint PRIMARY KEY, name text NOT NULL, state text NOT NULL, created timestamptz NOT NULL);
CREATE TABLE pim_contact (id bigint PRIMARY KEY, campaign bigint REFERENCES cmp_campaign(id), phone text, name text,
	email text, city text, balance numeric(12,2), attempts int, attrs jsonb, updated timestamptz);
CREATE TABLE cmp_call_history (id bigint PRIMARY KEY, contact bigint, campaign bigint, started timestamptz, duration int,
	result text, agent text, notes text);
CREATE TABLE pim_dnc (phone text PRIMARY KEY, added timestamptz NOT NULL, reason text);
INSERT INTO cmp_campaign SELECT g, 'campaign ' || g, (ARRAY['running','paused','done'])[1 + g % 3], now() - g * interval '1 day' FROM generate_series(1, 2000) g;
INSERT INTO pim_contact SELECT g, 1 + g % 2000, '+1555' || lpad((g::bigint * 7919 % 10000000)::text, 7, '0'),
	(ARRAY['Ana','Ben','Chen','Dara','Eli','Fatima','Gus','Hana'])[1 + g % 8] || ' ' || substr(md5(g::text), 1, 8),
	substr(md5((g * 3)::text), 1, 10) || '@example.com', (ARRAY['Denver','Lyon','Pune','Osaka','Leeds'])[1 + g % 5],
	(g % 100000) / 100.0, g % 7, jsonb_build_object('tier', g % 3, 'lang', (ARRAY['en','fr','es'])[1 + g % 3], 'ref', md5(g::text)),
	now() - (g % 10000) * interval '1 minute'
	FROM generate_series(1, 2600000) g;
INSERT INTO cmp_call_history SELECT g, 1 + g % 2600000, 1 + g % 2000, now() - g * interval '3 seconds', (g * 37) % 900,
	(ARRAY['answered','busy','no-answer','voicemail','dnc'])[1 + g % 5], 'agent' || (g % 300),
	CASE WHEN g % 4 = 0 THEN 'callback requested ' || md5(g::text) ELSE 'ok' END
	FROM generate_series(1, 3500000) g;
INSERT INTO pim_dnc SELECT '+1666' || lpad(g::text, 7, '0'), now() - g * interval '1 hour', (ARRAY['customer','regulator'])[1 + g % 2] FROM generate_series(1, 500000) g;
CREATE INDEX pim_contact_phone ON pim_contact (phone);
CREATE INDEX cmp_call_history_contact ON cmp_call_history (contact);
VACUUM ANALYZE;
SQL
	touch "$dir/ready"
fi
echo "pombench $(psql -d pombench -tAc 'SELECT pg_size_pretty(pg_database_size(current_database()))')" >&2
echo "$port $dir/pgpass"
