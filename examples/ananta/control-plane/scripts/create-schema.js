'use strict';

// Creates the service's schema (DB_SCHEMA) if it does not exist yet, before
// db-migrate starts.
//
// db-migrate-pg puts DB_SCHEMA first on the search_path and looks for its
// `migrations` table in that schema only. If the schema does not exist when it
// starts, `CREATE TABLE IF NOT EXISTS migrations` falls through to `public`, the
// first run records its migrations there, and the next run (the schema exists
// by then) creates an empty tenant_management.migrations and runs every
// migration again. A migration cannot create the schema in time: db-migrate
// creates its table before it runs the first one.
var pg = require('pg');

var schema = process.env.DB_SCHEMA;
if (!schema || schema === 'public') {
  process.exit(0);
}

// Connect where db-migrate will: it takes DATABASE_URL over database.json's
// DB_* values when DATABASE_URL is set (kubemigrate exec sets both, alike).
var client = new pg.Client(
  process.env.DATABASE_URL
    ? {connectionString: process.env.DATABASE_URL}
    : {
        host: process.env.DB_HOST,
        port: process.env.DB_PORT,
        database: process.env.DB_DATABASE,
        user: process.env.DB_USER,
        password: process.env.DB_PASSWORD,
      }
);

client
  .connect()
  .then(function () {
    return client.query('CREATE SCHEMA IF NOT EXISTS ' + client.escapeIdentifier(schema));
  })
  .then(function () {
    return client.end();
  })
  .catch(function (err) {
    console.error('creating schema ' + schema + ': ' + err.message);
    process.exitCode = 1;
    return client.end().catch(function () {});
  });
