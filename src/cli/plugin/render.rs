//! `status` for a person: one screen per installation, colors on a terminal
//! (plain in a pipe, or with NO_COLOR), the same words either way.

use artifortress_operator::api::artifortress::Severity;
use artifortress_operator::api::recovery_drill::{DrillResult, ObjectiveResult};
use artifortress_operator::engine::progress::human_bytes;

use super::view::{Health, InstallationView, short_duration};

#[derive(Clone, Copy)]
enum Color {
    Red,
    Yellow,
    Green,
    Bold,
}

struct Painter(bool);

impl Painter {
    fn paint(&self, color: Color, text: &str) -> String {
        if !self.0 {
            return text.to_string();
        }
        let code = match color {
            Color::Red => "31;1",
            Color::Yellow => "33;1",
            Color::Green => "32;1",
            Color::Bold => "1",
        };
        format!("\x1b[{code}m{text}\x1b[0m")
    }
}

/// Label column width.
const LABEL: usize = 16;

/// The screens of `views`, a blank line apart.
pub fn status_text(views: &[InstallationView], color: bool) -> String {
    if views.is_empty() {
        return "no Artifortress installation in this namespace (kubectl get artifortresses -A lists them all)\n"
            .into();
    }
    views.iter().map(|v| installation(v, &Painter(color))).collect::<Vec<_>>().join("\n")
}

fn line(out: &mut String, label: &str, text: impl AsRef<str>) {
    out.push_str(&format!("{label:<LABEL$}{}\n", text.as_ref()));
}

fn installation(v: &InstallationView, p: &Painter) -> String {
    let (word, color) = match v.health {
        Health::Healthy => ("HEALTHY", Color::Green),
        Health::Degraded => ("DEGRADED", Color::Yellow),
        Health::Failing => ("FAILING", Color::Red),
    };
    let mut out = format!("{} (namespace {}): {}\n", p.paint(Color::Bold, &v.name), v.namespace, p.paint(color, word));
    for problem in &v.problems {
        out += &format!("  {} {problem}\n", p.paint(color, "!"));
    }
    let dependencies: Vec<String> = v
        .dependencies
        .iter()
        .map(|d| match d.up {
            None => format!("{} not probed yet", d.name),
            Some(true) => format!("{} {} ({:.0} ms)", d.name, p.paint(Color::Green, "up"), d.latency_ms.unwrap_or(0.0)),
            Some(false) => format!("{} {}", d.name, p.paint(Color::Red, "down")),
        })
        .collect();
    line(&mut out, "Dependencies", dependencies.join(", "));
    if let Some(s) = &v.schema {
        let level = s.level.as_deref().unwrap_or("none recorded");
        let judged = if s.supported {
            "supported".to_string()
        } else {
            p.paint(Color::Yellow, "missing what the operator needs")
        };
        line(&mut out, "Schema", format!("{level} ({judged})"));
    }
    slo(&mut out, v, p);
    backup(&mut out, v, p);
    drill(&mut out, v, p);
    if let Some(w) = &v.wal {
        let behind = w.behind_bytes.map_or(String::new(), |b| format!(", {} behind the source", human_bytes(b)));
        let mut text = format!(
            "slot {}: status {} old{behind}, slot retains {}",
            w.slot,
            short_duration(w.status_age_seconds),
            human_bytes(w.retained_bytes)
        );
        if let Some(trouble) = &w.trouble {
            text += &format!("; {}", p.paint(Color::Yellow, trouble));
        }
        line(&mut out, "WAL archiving", text);
    }
    if let Some(b) = &v.blobs {
        line(&mut out, "Blobs", format!("{}: {}", paint_ok(p, b.ok, &b.reason), b.message));
    }
    let jobs: Vec<String> = v.active_jobs.iter().map(|j| format!("{} ({})", j.name, j.step)).collect();
    line(&mut out, "Active Jobs", if jobs.is_empty() { "none".to_string() } else { jobs.join(", ") });
    out
}

fn paint_ok(p: &Painter, ok: bool, text: &str) -> String {
    p.paint(if ok { Color::Green } else { Color::Yellow }, text)
}

fn slo(out: &mut String, v: &InstallationView, p: &Painter) {
    if v.slo.is_empty() {
        line(out, "SLO", "every tenant within its thresholds");
        return;
    }
    for (i, s) in v.slo.iter().enumerate() {
        let color = if s.severity == Severity::Critical { Color::Red } else { Color::Yellow };
        let level = s.critical.filter(|_| matches!(color, Color::Red)).or(s.warning);
        let text = format!(
            "{} {} {} = {} (over {})",
            p.paint(color, &format!("{:?}", s.severity)),
            s.tenant.as_deref().unwrap_or("-"),
            s.signal,
            s.value,
            level.map_or("-".into(), |l| l.to_string())
        );
        line(out, if i == 0 { "SLO" } else { "" }, text);
    }
}

fn backup(out: &mut String, v: &InstallationView, p: &Painter) {
    let Some(b) = &v.newest_backup else {
        line(out, "Newest backup", p.paint(Color::Red, "none completed"));
        return;
    };
    let age = b.age_seconds.map_or("-".into(), |a| format!("{} ago", short_duration(a)));
    let mut text = format!("{} ({:?}), {age}", b.name, b.method);
    if let Some(size) = &b.size {
        text += &format!(", {size}");
    }
    if let (Some(age), Some(objective)) = (b.age_seconds, b.rpo_objective_seconds) {
        let within = age <= objective;
        let verdict = if within { "within" } else { "over" };
        text += &format!("; {} RPO objective {}", paint_ok(p, within, verdict), short_duration(objective));
    }
    line(out, "Newest backup", text);
    let encrypted = match b.encrypted_to.as_slice() {
        [] => p.paint(Color::Yellow, "not encrypted"),
        [one] if one == "passphrase" => "encrypted with a passphrase".to_string(),
        recipients => format!("encrypted to {} recipient(s)", recipients.len()),
    };
    let locked = b.immutable.as_ref().map_or("lock unknown".to_string(), |c| format!("{}: {}", c.reason, c.message));
    line(out, "", format!("{encrypted}; {locked}"));
}

fn drill(out: &mut String, v: &InstallationView, p: &Painter) {
    let Some(d) = &v.last_drill else {
        line(out, "Last drill", p.paint(Color::Yellow, "none finished"));
        return;
    };
    let passed = d.result == Some(DrillResult::Passed);
    let result = d.result.map_or("unknown".into(), |r| format!("{r:?}"));
    let age = d.age_seconds.map_or("-".into(), |a| format!("{} ago", short_duration(a)));
    let of = d.backup.as_ref().map_or(String::new(), |b| format!(" of {b}"));
    let mut text = format!("{} {}{of}, {age}", d.name, paint_ok(p, passed, &result));
    if let Some(reason) = &d.reason {
        text += &format!(" ({})", p.paint(Color::Red, reason));
    }
    line(out, "Last drill", text);
    let objective = |name: &str, o: &Option<ObjectiveResult>| {
        o.as_ref().map(|o| {
            let met = o.met.map_or(String::new(), |m| format!(" {}", paint_ok(p, m, if m { "met" } else { "missed" })));
            format!("{name} {}{met}", o.summary)
        })
    };
    let mut numbers: Vec<String> = [objective("RPO", &d.rpo), objective("RTO", &d.rto)].into_iter().flatten().collect();
    if let Some(usable) = d.usable_seconds {
        numbers.push(format!("usable after {}", short_duration(usable)));
    }
    if !numbers.is_empty() {
        line(out, "", numbers.join(", "));
    }
    if !d.tampering.is_empty() {
        line(out, "", p.paint(Color::Red, &format!("{} tampered object(s): {}", d.tampering.len(), d.tampering[0])));
    }
}
