-- Run once by the postgres image on an empty data directory
-- (/docker-entrypoint-initdb.d), as the superuser, against database postgres.
--
-- One server, three databases, three roles: each service connects only to its
-- own database as its own role, and Debezium captures each database with that
-- same role (debezium/connectors/*.json). Each role
--   LOGIN        - the service and its connector connect with it;
--   REPLICATION  - Debezium opens a logical replication slot (pgoutput);
-- and owns its database, so it can create the tables (MIGRATE=true at service
-- start), and, as their owner, the publications Debezium auto-creates for them
-- (publication.autocreate.mode=filtered). CONNECT is revoked from PUBLIC, so
-- no role can even connect to another service's database.
--
-- The same names and passwords are in docker-compose.yml (DATABASE_URL) and
-- in the connector files; deploy/deploy_test.go checks that they agree.

CREATE ROLE orderuser LOGIN REPLICATION PASSWORD 'orderpw';
CREATE DATABASE orderdb OWNER orderuser;
REVOKE ALL ON DATABASE orderdb FROM PUBLIC;

CREATE ROLE customeruser LOGIN REPLICATION PASSWORD 'customerpw';
CREATE DATABASE customerdb OWNER customeruser;
REVOKE ALL ON DATABASE customerdb FROM PUBLIC;

CREATE ROLE paymentuser LOGIN REPLICATION PASSWORD 'paymentpw';
CREATE DATABASE paymentdb OWNER paymentuser;
REVOKE ALL ON DATABASE paymentdb FROM PUBLIC;
