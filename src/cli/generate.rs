//! Files generated from the code: the CRDs, the chart's alert rules and dashboard.

use std::path::PathBuf;

use artifortress_operator::{alerts, crdgen, dashboard};

use super::failure::{Failure, failed, usage};

#[derive(clap::Args)]
pub struct CrdArgs {
    /// Write `<name>.yaml` files into this directory instead of printing.
    #[arg(long)]
    out_dir: Option<PathBuf>,
}

pub fn crd(args: CrdArgs) -> Result<(), Failure> {
    let Some(dir) = args.out_dir else {
        print!("{}", crdgen::all_crds_yaml());
        return Ok(());
    };
    for path in crdgen::write_crds(&dir).map_err(|e| failed(format!("writing CRDs to {}: {e}", dir.display())))? {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}

#[derive(clap::Args)]
pub struct AlertsArgs {
    /// The thresholds file.
    #[arg(long, default_value = alerts::THRESHOLDS_FILE)]
    thresholds: PathBuf,
    /// Print the Grafana dashboard JSON instead.
    #[arg(long)]
    dashboard: bool,
}

pub fn alerts(args: AlertsArgs) -> Result<(), Failure> {
    let text = std::fs::read_to_string(&args.thresholds)
        .map_err(|e| usage(format!("--thresholds {}: {e}", args.thresholds.display())))?;
    let parsed = alerts::parse(&text).map_err(usage)?;
    if args.dashboard {
        print!("{}", dashboard::render(&parsed));
    } else {
        print!("{}", alerts::render(&parsed));
    }
    Ok(())
}
