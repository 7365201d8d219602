//! One connection to a datasource's server, MySQL/MariaDB or PostgreSQL
//! (sqlx): connect with a deadline, create the database, take the
//! `db init` lock, read and write the record of applied scripts, run a
//! script's statements.

use std::time::Duration;

use sqlx::mysql::{MySqlConnectOptions, MySqlConnection, MySqlSslMode};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection, Row};

use super::jdbc::{Target, Tls};
use super::script::{Dialect, Statement};

/// The same code on either engine's connection: sqlx's types differ by
/// engine, the statements built here do not.
macro_rules! on_either {
    ($db:expr, $c:ident => $body:expr) => {
        match $db {
            Db::MySql($c) => $body,
            Db::Postgres($c) => $body,
        }
    };
}

/// How long connecting may take: a wrong host fails in seconds, never hangs.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long `db init` waits for another one working on the same database.
pub const LOCK_WAIT: Duration = Duration::from_secs(300);
/// The table recording what `db init` ran.
pub const RECORD_TABLE: &str = "RIGGER_DBSCRIPTS";

/// A connection to one database.
pub enum Db {
    /// MySQL or MariaDB.
    MySql(MySqlConnection),
    /// PostgreSQL.
    Postgres(PgConnection),
}

/// A script `db init` ran, as recorded in the database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The script's path in the pack (`dbscripts/mysql.sql`).
    pub script: String,
    /// Its sha256.
    pub digest: String,
    /// The update level of the pack it came from.
    pub level: u32,
    /// When (RFC 3339).
    pub at: String,
    /// Which master.
    pub by: String,
}

/// Connects to `target` as `user` — to `database`, or to the server alone
/// (`None`) to create the database.
pub async fn connect(
    target: &Target,
    user: &str,
    password: &str,
    database: Option<&str>,
) -> Result<Db, String> {
    let connecting = async {
        match target.dialect {
            Dialect::MySql => {
                let mut options = MySqlConnectOptions::new()
                    .host(&target.host)
                    .port(target.port)
                    .username(user)
                    .password(password)
                    .ssl_mode(match target.tls {
                        Tls::Disabled => MySqlSslMode::Disabled,
                        Tls::Preferred => MySqlSslMode::Preferred,
                        Tls::Required => MySqlSslMode::Required,
                        Tls::Verified => MySqlSslMode::VerifyIdentity,
                    })
                    .disable_statement_logging();
                if let Some(database) = database {
                    options = options.database(database);
                }
                options.connect().await.map(Db::MySql)
            }
            Dialect::Postgres => PgConnectOptions::new()
                .host(&target.host)
                .port(target.port)
                .username(user)
                .password(password)
                .database(database.unwrap_or("postgres"))
                .ssl_mode(match target.tls {
                    Tls::Disabled => PgSslMode::Disable,
                    Tls::Preferred => PgSslMode::Prefer,
                    Tls::Required => PgSslMode::Require,
                    Tls::Verified => PgSslMode::VerifyFull,
                })
                .disable_statement_logging()
                .connect()
                .await
                .map(Db::Postgres),
        }
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(e)) => Err(format!(
            "cannot connect to {} as {user}: {}",
            target.describe(),
            server_error(&e)
        )),
        Err(_) => Err(format!(
            "cannot connect to {} as {user}: no answer within {}s (a wrong host, or a firewall)",
            target.describe(),
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// The server's own words for an error, else sqlx's.
pub fn server_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => match db.code() {
            Some(code) => format!("{} (code {code})", db.message()),
            None => db.message().to_string(),
        },
        other => other.to_string(),
    }
}

impl Db {
    /// Whether `database` exists on the server.
    pub async fn database_exists(&mut self, database: &str) -> Result<bool, String> {
        let sql = match self {
            Db::MySql(_) => "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            Db::Postgres(_) => "SELECT 1 FROM pg_database WHERE datname = $1",
        };
        let found = on_either!(self, c => sqlx::query(sql)
            .bind(database)
            .fetch_optional(c)
            .await
            .map(|row| row.is_some()));
        found.map_err(|e| format!("cannot list the databases: {}", server_error(&e)))
    }

    /// Creates `database` (a name already checked to be letters, digits
    /// and `_`); one made meanwhile by another run is no error. Whether
    /// this call created it.
    pub async fn create_database(&mut self, database: &str) -> Result<bool, String> {
        let done = match self {
            Db::MySql(c) => sqlx::raw_sql(&format!(
                "CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4"
            ))
            .execute(c)
            .await
            // No row affected: it was there (a warning, not an error).
            .map(|r| r.rows_affected() > 0),
            Db::Postgres(c) => {
                match sqlx::raw_sql(&format!("CREATE DATABASE \"{database}\""))
                    .execute(c)
                    .await
                {
                    // duplicate_database, or the catalog's unique index when
                    // two runs create it at the same moment.
                    Err(sqlx::Error::Database(e))
                        if matches!(e.code().as_deref(), Some("42P04" | "23505")) =>
                    {
                        Ok(false)
                    }
                    other => other.map(|_| true),
                }
            }
        };
        done.map_err(|e| format!("cannot create database {database}: {}", server_error(&e)))
    }

    /// Takes the database's `db init` lock, waiting up to [`LOCK_WAIT`]
    /// for another master or operator running it; held until the
    /// connection closes.
    pub async fn lock(&mut self, database: &str) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        loop {
            let got = match self {
                Db::MySql(c) => sqlx::query("SELECT CAST(GET_LOCK(?, 1) AS SIGNED)")
                    .bind(format!("rigger_db_init.{database}"))
                    .fetch_one(c)
                    .await
                    .map(|row| row.try_get::<Option<i64>, _>(0).ok().flatten() == Some(1)),
                Db::Postgres(c) => {
                    sqlx::query("SELECT pg_try_advisory_lock(hashtext('rigger_db_init'))")
                        .fetch_one(c)
                        .await
                        .map(|row| row.try_get::<bool, _>(0).unwrap_or(false))
                }
            }
            .map_err(|e| format!("cannot take the db init lock: {}", server_error(&e)))?;
            if got {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "another db init has held the lock on {database} for {}s: is one stuck?",
                    LOCK_WAIT.as_secs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Creates the record table if it is missing.
    pub async fn ensure_record_table(&mut self) -> Result<(), String> {
        let ddl = format!(
            "CREATE TABLE IF NOT EXISTS {RECORD_TABLE} (SCRIPT VARCHAR(255) NOT NULL PRIMARY KEY, \
             DIGEST CHAR(64) NOT NULL, UPDATE_LEVEL INTEGER NOT NULL, APPLIED_AT VARCHAR(40) NOT NULL, \
             APPLIED_BY VARCHAR(255) NOT NULL)"
        );
        self.raw(&ddl)
            .await
            .map_err(|e| format!("cannot create {RECORD_TABLE}: {e}"))
    }

    /// The scripts recorded as applied (none when the table is missing).
    pub async fn applied(&mut self) -> Result<Vec<Applied>, String> {
        let sql = format!(
            "SELECT SCRIPT, DIGEST, UPDATE_LEVEL, APPLIED_AT, APPLIED_BY FROM {RECORD_TABLE}"
        );
        let rows = on_either!(self, c => sqlx::query(&sql).fetch_all(c).await.map(|rows| {
            rows.iter()
                .map(|r| applied_of(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
                .collect()
        }));
        match rows {
            Ok(rows) => Ok(rows),
            // No table yet: nothing applied (MySQL 1146, PostgreSQL 42P01).
            Err(sqlx::Error::Database(e))
                if matches!(e.code().as_deref(), Some("42S02" | "42P01")) =>
            {
                Ok(Vec::new())
            }
            Err(e) => Err(format!("cannot read {RECORD_TABLE}: {}", server_error(&e))),
        }
    }

    /// Runs a script's statements and records it, all or nothing on
    /// PostgreSQL (DDL is transactional there); MySQL commits each DDL
    /// statement, so a failure says how many were applied.
    pub async fn apply(
        &mut self,
        statements: &[Statement],
        record: &Applied,
    ) -> Result<(), String> {
        let transactional = matches!(self, Db::Postgres(_));
        if transactional {
            self.raw("BEGIN").await?;
        }
        for (i, statement) in statements.iter().enumerate() {
            if let Err(e) = self.raw(&statement.text).await {
                let mut message = format!(
                    "statement {} of {} (line {}: {}): {e}",
                    i + 1,
                    statements.len(),
                    statement.line,
                    statement.head()
                );
                if transactional {
                    let _ = self.raw("ROLLBACK").await;
                    message.push_str("; nothing of the script was applied");
                } else if i > 0 {
                    message.push_str(&format!(
                        "; statements 1–{i} were applied (MySQL commits each): put the cause right and run db init again"
                    ));
                }
                return Err(message);
            }
        }
        let values = match self {
            Db::MySql(_) => "?, ?, ?, ?, ?",
            Db::Postgres(_) => "$1, $2, $3, $4, $5",
        };
        let sql = format!(
            "INSERT INTO {RECORD_TABLE} (SCRIPT, DIGEST, UPDATE_LEVEL, APPLIED_AT, APPLIED_BY) VALUES ({values})"
        );
        let insert = on_either!(self, c => sqlx::query(&sql)
            .bind(&record.script)
            .bind(&record.digest)
            .bind(record.level as i32)
            .bind(&record.at)
            .bind(&record.by)
            .execute(c)
            .await
            .map(drop));
        insert.map_err(|e| format!("cannot record {}: {}", record.script, server_error(&e)))?;
        if transactional {
            self.raw("COMMIT").await?;
        }
        Ok(())
    }

    async fn raw(&mut self, sql: &str) -> Result<(), String> {
        on_either!(self, c => sqlx::raw_sql(sql).execute(c).await.map(drop))
            .map_err(|e| server_error(&e))
    }

    /// Closes the connection (releasing the lock).
    pub async fn close(self) {
        let _ = on_either!(self, c => c.close().await);
    }
}

fn applied_of(script: String, digest: String, level: i32, at: String, by: String) -> Applied {
    Applied {
        script,
        digest,
        level: level.max(0) as u32,
        at,
        by,
    }
}
