//! A datasource's JDBC URL read as a connection target: which engine,
//! where, which database, and whether TLS is asked for.

use super::script::Dialect;

/// TLS as the URL asks for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// No TLS (`useSSL=false`, `sslmode=disable`).
    Disabled,
    /// TLS if the server offers it (the drivers' default).
    Preferred,
    /// TLS or no connection (`useSSL=true`, `sslMode=REQUIRED`, `sslmode=require`).
    Required,
    /// TLS with the server's certificate checked (`VERIFY_CA`, `verify-full`, …).
    Verified,
}

/// Where a datasource's database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The engine (MySQL/MariaDB or PostgreSQL).
    pub dialect: Dialect,
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Database name.
    pub database: String,
    /// TLS.
    pub tls: Tls,
}

impl Target {
    /// `engine://host:port/database`, for messages (no credentials).
    pub fn describe(&self) -> String {
        let engine = match self.dialect {
            Dialect::MySql => "mysql",
            Dialect::Postgres => "postgresql",
        };
        format!("{engine}://{}:{}/{}", self.host, self.port, self.database)
    }
}

/// What a JDBC URL means for `db init`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A server to initialise.
    Server(Target),
    /// The product's embedded H2 database: nothing to do on a server.
    Embedded,
}

/// Reads a JDBC URL. Oracle and SQL Server are named as unsupported.
pub fn parse(jdbc: &str) -> Result<Parsed, String> {
    let rest = jdbc.strip_prefix("jdbc:").ok_or_else(|| {
        format!("{jdbc:?} is not a JDBC URL (jdbc:mysql://…, jdbc:postgresql://…)")
    })?;
    let scheme = rest.split(':').next().unwrap_or_default();
    let dialect = match scheme {
        "mysql" | "mariadb" => Dialect::MySql,
        "postgresql" => Dialect::Postgres,
        "h2" => return Ok(Parsed::Embedded),
        "oracle" => return Err(unsupported("Oracle", "oracle.sql")),
        "sqlserver" | "jtds" => return Err(unsupported("Microsoft SQL Server", "mssql.sql")),
        other => {
            return Err(format!(
                "{jdbc:?}: the {other:?} engine is not supported (MySQL, MariaDB and PostgreSQL are)"
            ));
        }
    };
    let url = url::Url::parse(rest).map_err(|e| format!("{jdbc:?} is not a valid URL: {e}"))?;
    let host = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| format!("{jdbc:?} names no host"))?;
    if host.contains(',') {
        return Err(format!(
            "{jdbc:?} names several hosts: give db init the primary's address"
        ));
    }
    let database = url.path().trim_start_matches('/').to_string();
    if database.is_empty() {
        return Err(format!("{jdbc:?} names no database"));
    }
    if !database
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "{jdbc:?}: database name {database:?} may hold only letters, digits and _"
        ));
    }
    let port = url.port().unwrap_or(match dialect {
        Dialect::MySql => 3306,
        Dialect::Postgres => 5432,
    });
    let tls = tls(&url, dialect);
    Ok(Parsed::Server(Target {
        dialect,
        host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
        port,
        database,
        tls,
    }))
}

fn unsupported(engine: &str, script: &str) -> String {
    format!(
        "{engine} is not supported by masterctl db init: run the pack's dbscripts/{script} with your database's own tools"
    )
}

fn tls(url: &url::Url, dialect: Dialect) -> Tls {
    let mut tls = Tls::Preferred;
    for (key, value) in url.query_pairs() {
        let value = value.to_ascii_lowercase();
        match (dialect, key.as_ref()) {
            (Dialect::MySql, "useSSL" | "requireSSL") => {
                tls = if value == "true" {
                    Tls::Required
                } else {
                    Tls::Disabled
                };
            }
            (Dialect::MySql, "sslMode") | (Dialect::Postgres, "sslmode") => {
                tls = match value.as_str() {
                    "disabled" | "disable" => Tls::Disabled,
                    "preferred" | "prefer" | "allow" => Tls::Preferred,
                    "required" | "require" => Tls::Required,
                    _ => Tls::Verified,
                };
            }
            (Dialect::Postgres, "ssl") if value == "true" => tls = Tls::Required,
            _ => {}
        }
    }
    tls
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(url: &str) -> Target {
        match parse(url).unwrap() {
            Parsed::Server(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn mysql_mariadb_and_postgresql_urls_become_targets() {
        let t = server("jdbc:mysql://wso2-db.internal:3307/WSO2IS_IDENTITY_DB?useSSL=true&amp;x=1");
        assert_eq!(t.dialect, Dialect::MySql);
        assert_eq!((t.host.as_str(), t.port), ("wso2-db.internal", 3307));
        assert_eq!(t.database, "WSO2IS_IDENTITY_DB");
        assert_eq!(t.tls, Tls::Required);
        let t = server("jdbc:mariadb://10.0.0.5/shared");
        assert_eq!((t.port, t.tls), (3306, Tls::Preferred));
        let t = server("jdbc:postgresql://db:5433/apim?sslmode=verify-full");
        assert_eq!(
            (t.dialect, t.port, t.tls),
            (Dialect::Postgres, 5433, Tls::Verified)
        );
        assert_eq!(t.describe(), "postgresql://db:5433/apim");
        assert_eq!(server("jdbc:mysql://h/d?useSSL=false").tls, Tls::Disabled);
    }

    #[test]
    fn embedded_unsupported_and_malformed_urls_are_named() {
        assert_eq!(
            parse("jdbc:h2:./repository/database/X").unwrap(),
            Parsed::Embedded
        );
        let e = parse("jdbc:oracle:thin:@db:1521/ORCL").unwrap_err();
        assert!(
            e.contains("Oracle is not supported") && e.contains("oracle.sql"),
            "{e}"
        );
        let e = parse("jdbc:sqlserver://db:1433;databaseName=X").unwrap_err();
        assert!(e.contains("SQL Server"), "{e}");
        assert!(parse("mysql://h/d").unwrap_err().contains("not a JDBC URL"));
        assert!(
            parse("jdbc:mysql://h/")
                .unwrap_err()
                .contains("no database")
        );
        assert!(
            parse("jdbc:mysql://h/x;drop")
                .unwrap_err()
                .contains("letters, digits")
        );
        assert!(
            parse("jdbc:mysql://a,b/x")
                .unwrap_err()
                .contains("several hosts")
        );
        assert!(
            parse("jdbc:db2://h/x")
                .unwrap_err()
                .contains("not supported")
        );
    }
}
