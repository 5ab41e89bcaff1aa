//! Npgsql connection strings (`Host=db;Port=5432;Username=app;Password=…;Database=app`),
//! the form .NET applications such as Kublai keep in `ConnectionStrings__Postgres`,
//! read into the parts a libpq URL carries.
//!
//! The syntax is ADO.NET's: `keyword=value` pairs separated by `;`, keywords
//! case-insensitive (Npgsql also accepts them without their spaces:
//! `SslMode`, `SSL Mode`), whitespace around keywords and unquoted values
//! ignored, a value in single or double quotes may hold `;`, `=` and the other
//! quote, its own quote doubled; `==` in a keyword is a literal `=`. No error
//! ever repeats a value: values can be passwords.

/// What a connection string says, in libpq's terms.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnectionParts {
    /// Hosts in order, each with its port (a host without one gets `Port`, default 5432).
    pub hosts: Vec<(String, u16)>,
    pub database: Option<String>,
    pub username: Option<String>,
    pub password: Option<String>,
    /// libpq's value: disable, allow, prefer, require, verify-ca, verify-full.
    pub ssl_mode: Option<String>,
    pub root_certificate: Option<String>,
    pub ssl_certificate: Option<String>,
    pub ssl_key: Option<String>,
    /// any, primary, standby, prefer-primary, prefer-standby, read-write, read-only.
    pub target_session_attributes: Option<String>,
    pub application_name: Option<String>,
    pub search_path: Option<String>,
    /// PostgreSQL connection options (`Options`), e.g. `-c statement_timeout=5s`.
    pub options: Option<String>,
    /// Connection timeout in seconds.
    pub timeout: Option<u32>,
}

/// Keywords Npgsql knows that only shape its own pool or client behaviour;
/// accepted and ignored (written without spaces, lower case).
const IGNORED: &[&str] = &[
    "pooling",
    "minimumpoolsize",
    "minpoolsize",
    "maximumpoolsize",
    "maxpoolsize",
    "connectionidlelifetime",
    "connectionpruninginterval",
    "connectionlifetime",
    "commandtimeout",
    "internalcommandtimeout",
    "cancellationtimeout",
    "keepalive",
    "tcpkeepalive",
    "tcpkeepalivetime",
    "tcpkeepaliveinterval",
    "includeerrordetail",
    "includeerrordetails",
    "logparameters",
    "enlist",
    "multiplexing",
    "writecoalescingbuffersize",
    "readbuffersize",
    "writebuffersize",
    "socketreceivebuffersize",
    "socketsendbuffersize",
    "maxautoprepare",
    "autoprepareminusages",
    "nobackslashescapes",
    "serversidecursors",
    "arraynullabilitymode",
    "loadtabletypes",
    "loadbalancehosts",
    "hostrecheckseconds",
    "trustservercertificate",
    "checkcertificaterevocation",
    "clientencoding",
    "encoding",
    "timezone",
    "persistsecurityinfo",
    "passfile",
    "kerberosservicename",
    "krbsrvname",
    "includerealm",
    "sslpassword",
    "sslnegotiation",
    "gssencryptionmode",
    "channelbinding",
    "requireauth",
    "integratedsecurity",
    "noresetonclose",
    "serversidecursors",
    "servercompatibilitymode",
    "eftemplatedatabase",
    "efadmindatabase",
    "loadtablecomposites",
    "useperfcounters",
    "protocol",
    "syncnotification",
    "preloadreader",
    "useextendedtypes",
    "compatible",
];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NpgsqlError {
    #[error("Npgsql connection string: {0}")]
    Syntax(String),
}

fn syntax(message: impl Into<String>) -> NpgsqlError {
    NpgsqlError::Syntax(message.into())
}

fn no_value(before: usize) -> NpgsqlError {
    syntax(format!(
        "entry {} has no '=' (expected Keyword=value; the entry is not repeated, it may hold a secret)",
        before + 1
    ))
}

/// Splits a connection string into (keyword, value) pairs, keywords as written.
fn pairs(s: &str) -> Result<Vec<(String, String)>, NpgsqlError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        // The keyword: up to a single '=' ("==" is a literal '=').
        let mut key = String::new();
        loop {
            match chars.get(i) {
                None if key.trim().is_empty() => return Ok(out),
                // The "keyword" may be a mistyped secret: never repeat it.
                None => return Err(no_value(out.len())),
                Some(';') if key.trim().is_empty() => {
                    key.clear();
                    i += 1;
                }
                Some(';') => return Err(no_value(out.len())),
                Some('=') if chars.get(i + 1) == Some(&'=') => {
                    key.push('=');
                    i += 2;
                }
                Some('=') => {
                    i += 1;
                    break;
                }
                Some(c) => {
                    key.push(*c);
                    i += 1;
                }
            }
        }
        let key = key.trim().to_string();
        if key.is_empty() {
            return Err(syntax("a value without a keyword (\"=…\")"));
        }
        while chars.get(i).is_some_and(|c| c.is_whitespace()) {
            i += 1;
        }
        let mut value = String::new();
        match chars.get(i) {
            Some(&quote @ ('"' | '\'')) => {
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(syntax(format!("the value of {key:?} has no closing {quote}"))),
                        Some(c) if *c == quote && chars.get(i + 1) == Some(&quote) => {
                            value.push(quote);
                            i += 2;
                        }
                        Some(c) if *c == quote => {
                            i += 1;
                            break;
                        }
                        Some(c) => {
                            value.push(*c);
                            i += 1;
                        }
                    }
                }
                while chars.get(i).is_some_and(|c| c.is_whitespace()) {
                    i += 1;
                }
                match chars.get(i) {
                    None => {}
                    Some(';') => i += 1,
                    Some(_) => return Err(syntax(format!("unexpected characters after the quoted value of {key:?}"))),
                }
            }
            _ => {
                while let Some(c) = chars.get(i) {
                    i += 1;
                    if *c == ';' {
                        break;
                    }
                    value.push(*c);
                }
                value = value.trim().to_string();
            }
        }
        out.push((key, value));
    }
    Ok(out)
}

/// Reads an Npgsql connection string.
pub fn parse(s: &str) -> Result<ConnectionParts, NpgsqlError> {
    let mut parts = ConnectionParts::default();
    let mut hosts: Option<String> = None;
    let mut port: Option<u16> = None;
    let mut ssl_flag = None;
    for (key, value) in pairs(s)? {
        let normalised: String = key.chars().filter(|c| !c.is_whitespace()).collect::<String>().to_lowercase();
        let text = || (!value.is_empty()).then(|| value.clone());
        match normalised.as_str() {
            "host" | "server" => hosts = text(),
            "port" => {
                port = Some(
                    value
                        .parse()
                        .map_err(|_| syntax(format!("Port must be a number from 1 to 65535, not {value:?}")))?,
                )
            }
            "database" | "db" => parts.database = text(),
            "username" | "user" | "userid" | "uid" => parts.username = text(),
            "password" | "pwd" | "psw" => parts.password = Some(value.clone()),
            "sslmode" => parts.ssl_mode = Some(ssl_mode(&value)?),
            "rootcertificate" => parts.root_certificate = text(),
            // Npgsql 6 names; before it, "Client Certificate" and "Client Certificate Key".
            "sslcertificate" | "clientcertificate" => parts.ssl_certificate = text(),
            "sslkey" | "clientcertificatekey" => parts.ssl_key = text(),
            // The old boolean: SSL=true means at least require, when no SSL Mode says otherwise.
            "ssl" => ssl_flag = Some(value.eq_ignore_ascii_case("true")),
            "options" => parts.options = text(),
            "targetsessionattributes" => parts.target_session_attributes = Some(session_attributes(&value)?),
            "applicationname" => parts.application_name = text(),
            "searchpath" => parts.search_path = text(),
            "timeout" => {
                parts.timeout =
                    Some(value.parse().map_err(|_| syntax(format!("Timeout must be whole seconds, not {value:?}")))?)
            }
            other if IGNORED.contains(&other) => {}
            _ => {
                return Err(syntax(format!(
                    "keyword {key:?} is not an Npgsql keyword (known: Host, Port, Database, Username, Password, SSL Mode, Target Session Attributes, …)"
                )));
            }
        }
    }
    if ssl_flag == Some(true) && parts.ssl_mode.is_none() {
        parts.ssl_mode = Some("require".into());
    }
    let hosts = hosts.ok_or_else(|| syntax("no Host (e.g. Host=db.example;Port=5432)"))?;
    let default_port = port.unwrap_or(5432);
    for host in hosts.split(',').map(str::trim) {
        if host.is_empty() {
            return Err(syntax("an empty host in Host"));
        }
        parts.hosts.push(split_host_port(host, default_port)?);
    }
    Ok(parts)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`; a Unix socket directory (`/…`) keeps the default port.
fn split_host_port(host: &str, default_port: u16) -> Result<(String, u16), NpgsqlError> {
    let bad_port = |p: &str| syntax(format!("the port {p:?} of a Host entry is not a number from 1 to 65535"));
    if host.starts_with('/') {
        return Ok((host.to_string(), default_port));
    }
    if let Some(rest) = host.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or_else(|| syntax("an IPv6 Host entry lacks its ']'"))?;
        return match after.strip_prefix(':') {
            Some(p) => Ok((address.to_string(), p.parse().map_err(|_| bad_port(p))?)),
            None => Ok((address.to_string(), default_port)),
        };
    }
    match host.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Ok((h.to_string(), p.parse().map_err(|_| bad_port(p))?)),
        _ => Ok((host.to_string(), default_port)),
    }
}

fn ssl_mode(value: &str) -> Result<String, NpgsqlError> {
    let v: String = value.chars().filter(|c| c.is_alphanumeric()).collect::<String>().to_lowercase();
    Ok(match v.as_str() {
        "disable" => "disable",
        "allow" => "allow",
        "prefer" => "prefer",
        "require" => "require",
        "verifyca" => "verify-ca",
        "verifyfull" => "verify-full",
        _ => {
            return Err(syntax(format!(
                "SSL Mode {value:?} is not one of Disable, Allow, Prefer, Require, VerifyCA, VerifyFull"
            )));
        }
    }
    .to_string())
}

fn session_attributes(value: &str) -> Result<String, NpgsqlError> {
    let v = value.trim().to_lowercase();
    const KNOWN: &[&str] =
        &["any", "primary", "standby", "prefer-primary", "prefer-standby", "read-write", "read-only"];
    if KNOWN.contains(&v.as_str()) {
        Ok(v)
    } else {
        Err(syntax(format!("Target Session Attributes {value:?} is not one of {}", KNOWN.join(", "))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_kublai_chart_form() {
        let p = parse("Host=postgres.db.svc;Port=5432;Username=kublai;Password=s3cr3t;Database=kublai").unwrap();
        assert_eq!(p.hosts, [("postgres.db.svc".to_string(), 5432)]);
        assert_eq!(
            (p.username.as_deref(), p.password.as_deref(), p.database.as_deref()),
            (Some("kublai"), Some("s3cr3t"), Some("kublai"))
        );
    }

    #[test]
    fn keywords_in_any_case_spacing_and_synonym() {
        for s in [
            "server=db;user id=app;pwd=x;db=af;sslmode=require",
            "SERVER = db ; User ID=app ;PWD = x; DB=af; SSL Mode=Require;",
            "Host=db;UserName=app;Password=x;Database=af;Ssl Mode=require",
            "Host=db;UID=app;PSW=x;Database=af;SSLMODE=REQUIRE",
        ] {
            let p = parse(s).unwrap_or_else(|e| panic!("{s}: {e}"));
            assert_eq!(p.hosts[0].0, "db", "{s}");
            assert_eq!(p.username.as_deref(), Some("app"), "{s}");
            assert_eq!(p.password.as_deref(), Some("x"), "{s}");
            assert_eq!(p.database.as_deref(), Some("af"), "{s}");
            assert_eq!(p.ssl_mode.as_deref(), Some("require"), "{s}");
        }
        for (npgsql, libpq) in [("VerifyCA", "verify-ca"), ("Verify-Full", "verify-full"), ("Disable", "disable")] {
            assert_eq!(parse(&format!("Host=h;SSL Mode={npgsql}")).unwrap().ssl_mode.as_deref(), Some(libpq));
        }
    }

    #[test]
    fn quoted_values_hold_separators_and_doubled_quotes() {
        let p = parse(r#"Host=db;Password="p;a=ss""w'd";Username='o''brien';Database= spaced name "#).unwrap();
        assert_eq!(p.password.as_deref(), Some(r#"p;a=ss"w'd"#));
        assert_eq!(p.username.as_deref(), Some("o'brien"));
        assert_eq!(p.database.as_deref(), Some("spaced name"), "unquoted values are trimmed");
        let p = parse("Host=db;Password=' leading and trailing ';").unwrap();
        assert_eq!(p.password.as_deref(), Some(" leading and trailing "), "quotes keep spaces");
        let p = parse("Host=db;;Password=a==b;;").unwrap();
        assert_eq!(p.password.as_deref(), Some("a==b"), "'=' in an unquoted value is kept");
    }

    #[test]
    fn several_hosts_with_their_ports_and_the_session_they_must_be() {
        let p =
            parse("Host=pg-a,pg-b:5433,[fd00::1]:5434,[fd00::2];Port=6432;Target Session Attributes=primary").unwrap();
        assert_eq!(
            p.hosts,
            [("pg-a".into(), 6432), ("pg-b".into(), 5433), ("fd00::1".into(), 5434), ("fd00::2".into(), 6432)]
        );
        assert_eq!(p.target_session_attributes.as_deref(), Some("primary"));
        let p = parse("Host=/var/run/postgresql;Database=af").unwrap();
        assert_eq!(p.hosts, [("/var/run/postgresql".into(), 5432)]);
    }

    #[test]
    fn other_npgsql_settings_are_read_or_ignored() {
        let p = parse(
            "Host=db;Application Name=kublai-api;Search Path=kublai,public;Timeout=30;Pooling=true;Maximum Pool Size=50;Command Timeout=60;Include Error Detail=true;Root Certificate=/certs/ca.crt;SSL Certificate=/c.crt;SSL Key=/c.key",
        )
        .unwrap();
        assert_eq!(p.application_name.as_deref(), Some("kublai-api"));
        assert_eq!(p.search_path.as_deref(), Some("kublai,public"));
        assert_eq!(p.timeout, Some(30));
        assert_eq!(p.root_certificate.as_deref(), Some("/certs/ca.crt"));
        assert_eq!((p.ssl_certificate.as_deref(), p.ssl_key.as_deref()), (Some("/c.crt"), Some("/c.key")));
    }

    /// Every keyword of Npgsql's connection-string reference is read or ignored,
    /// none refused: a string Kublai runs with is one the operator reads.
    #[test]
    fn every_documented_keyword_is_accepted() {
        let documented = [
            "Host=db",
            "Port=5432",
            "Database=af",
            "Username=app",
            "Password=x",
            "Passfile=/p",
            "SSL Mode=Prefer",
            "Trust Server Certificate=true",
            "SSL Certificate=/c",
            "SSL Key=/k",
            "SSL Password=x",
            "Root Certificate=/r",
            "Check Certificate Revocation=false",
            "Integrated Security=false",
            "Persist Security Info=false",
            "Kerberos Service Name=postgres",
            "Include Realm=true",
            "Include Error Detail=true",
            "Log Parameters=false",
            "Pooling=true",
            "Minimum Pool Size=0",
            "Maximum Pool Size=100",
            "Connection Idle Lifetime=300",
            "Connection Pruning Interval=10",
            "ConnectionLifetime=0",
            "Timeout=15",
            "Command Timeout=30",
            "Internal Command Timeout=-1",
            "Cancellation Timeout=2000",
            "Keepalive=0",
            "Tcp Keepalive=false",
            "Tcp Keepalive Time=0",
            "Tcp Keepalive Interval=0",
            "Max Auto Prepare=0",
            "Auto Prepare Min Usages=5",
            "Use Perf Counters=false",
            "Read Buffer Size=8192",
            "Write Buffer Size=8192",
            "Socket Receive Buffer Size=8192",
            "Socket Send Buffer Size=8192",
            "No Reset On Close=false",
            "Target Session Attributes=any",
            "Load Balance Hosts=false",
            "Host Recheck Seconds=10",
            "Options='-c statement_timeout=5s'",
            "Application Name=kublai",
            "Enlist=true",
            "Search Path=public",
            "Client Encoding=UTF8",
            "Encoding=UTF8",
            "Timezone=UTC",
            "EF Template Database=template1",
            "EF Admin Database=template1",
            "Load Table Composites=false",
            "Array Nullability Mode=Never",
            "Server Compatibility Mode=none",
        ];
        let p = parse(&documented.join(";")).unwrap();
        assert_eq!(p.options.as_deref(), Some("-c statement_timeout=5s"));
        assert_eq!(p.ssl_mode.as_deref(), Some("prefer"));
        // Older Npgsql names.
        let p = parse("Server=db;User Id=app;SSL=true;Client Certificate=/c;Client Certificate Key=/k").unwrap();
        assert_eq!(
            (p.ssl_mode.as_deref(), p.ssl_certificate.as_deref(), p.ssl_key.as_deref()),
            (Some("require"), Some("/c"), Some("/k"))
        );
    }

    #[test]
    fn errors_name_the_keyword_and_never_the_password() {
        let secret = "hunter2-secret";
        for (s, says) in [
            (format!("Host=db;Password={secret};Bogus=1"), "\"Bogus\" is not an Npgsql keyword"),
            (format!("Password={secret};Database=af"), "no Host"),
            (format!("Host=db;Password=\"{secret}"), "no closing \""),
            (format!("Host=db;Password='{secret}'x"), "after the quoted value of \"Password\""),
            (format!("Host=db;Password={secret};Port=abc"), "Port must be a number"),
            (format!("Host=db:99999;Password={secret}"), "port \"99999\""),
            (format!("Host=db;Password={secret};Target Session Attributes=master"), "is not one of any, primary"),
            (format!("Host=db;Password{secret}"), "entry 2 has no '='"),
        ] {
            let e = parse(&s).unwrap_err().to_string();
            assert!(e.contains(says), "{s}: {e}");
            assert!(!e.contains(secret), "{e}");
        }
    }
}
