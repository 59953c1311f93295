'use strict';

// Runs sqls/<name>-up.sql or -down.sql, the layout of `db-migrate create plans-subscriptions --sql-file`.
var fs = require('fs');
var path = require('path');
var Promise;

exports.setup = function (options) {
  Promise = options.Promise;
};

function runSqlFile(db, file) {
  return new Promise(function (resolve, reject) {
    fs.readFile(path.join(__dirname, 'sqls', file), {encoding: 'utf-8'}, function (err, data) {
      if (err) return reject(err);
      resolve(data);
    });
  }).then(function (data) {
    return db.runSql(data);
  });
}

exports.up = function (db) {
  return runSqlFile(db, '20240205143000-plans-subscriptions-up.sql');
};

exports.down = function (db) {
  return runSqlFile(db, '20240205143000-plans-subscriptions-down.sql');
};

exports._meta = {
  version: 1,
};
