//! Drill history as a picture: the RTO and RPO the last drills of a store (an
//! installation) measured, against their objectives, as an SVG the report
//! links and `drills chart` writes. The stored verdicts are the history.

use plotters::prelude::*;

use super::layout::DrillEntry;

/// How many drills a chart shows (the newest).
pub const HISTORY_DRILLS: usize = 20;

/// The newest [`HISTORY_DRILLS`] of `drills` (oldest first) as an SVG; `None`
/// when none of them measured an RTO or RPO.
pub fn svg(drills: &[DrillEntry]) -> Option<String> {
    let drills = &drills[drills.len().saturating_sub(HISTORY_DRILLS)..];
    let measured = |d: &DrillEntry| d.verdict.rto.is_some() || d.verdict.rpo.is_some();
    if !drills.iter().any(measured) {
        return None;
    }
    let series = |pick: fn(&DrillEntry) -> Option<f64>| -> Vec<(usize, f64)> {
        drills.iter().enumerate().filter_map(|(i, d)| pick(d).map(|s| (i, s))).collect()
    };
    let rto = series(|d| d.verdict.rto.as_ref().map(|o| o.measured_seconds));
    let rpo = series(|d| d.verdict.rpo.as_ref().map(|o| o.measured_seconds));
    let rto_objective = series(|d| d.verdict.rto.as_ref().and_then(|o| o.objective_seconds));
    let rpo_objective = series(|d| d.verdict.rpo.as_ref().and_then(|o| o.objective_seconds));
    // Measured times are often seconds against objectives of minutes or
    // hours: a logarithmic axis keeps both readable.
    let values: Vec<f64> =
        [&rto, &rpo, &rto_objective, &rpo_objective].iter().flat_map(|s| s.iter().map(|(_, v)| *v)).collect();
    let top = values.iter().copied().fold(1.0_f64, f64::max) * 2.0;
    let bottom = values.iter().copied().filter(|v| *v > 0.0).fold(top, f64::min).max(0.001) / 2.0;

    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, (900, 420)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let last = drills.len().saturating_sub(1).max(1);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("RTO and RPO of the last {} drills against their objectives", drills.len()),
                ("sans-serif", 20),
            )
            .margin(16)
            .margin_right(48)
            .x_label_area_size(46)
            .y_label_area_size(70)
            .build_cartesian_2d(0..last, (bottom..top).log_scale())
            .ok()?;
        let labels: Vec<String> = drills
            .iter()
            .map(|d| d.verdict.started_at.map_or_else(|| d.drill.clone(), |t| t.format("%m-%d %H:%M:%S").to_string()))
            .collect();
        chart
            .configure_mesh()
            .x_desc("drill (oldest to newest, UTC)")
            .y_desc("time (log scale)")
            .x_labels(drills.len().min(10))
            .x_label_formatter(&|i| labels.get(*i).cloned().unwrap_or_default())
            .y_label_formatter(&|s| super::progress::human_duration(*s))
            .draw()
            .ok()?;
        let (rto_colour, rpo_colour) = (RGBColor(31, 119, 180), RGBColor(44, 160, 44));
        for (points, colour, name) in [(&rto, rto_colour, "RTO measured"), (&rpo, rpo_colour, "RPO measured")] {
            chart
                .draw_series(LineSeries::new(points.iter().map(|(i, v)| (*i, v.max(bottom))), colour.stroke_width(2)))
                .ok()?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
            let points = points.iter().map(|(i, v)| (*i, v.max(bottom)));
            chart.draw_series(points.map(|p| Circle::new(p, 4, colour.filled()))).ok()?;
        }
        for (points, colour, name) in
            [(&rto_objective, rto_colour, "RTO objective"), (&rpo_objective, rpo_colour, "RPO objective")]
        {
            chart
                .draw_series(DashedLineSeries::new(points.iter().copied(), 6, 4, colour.stroke_width(1)))
                .ok()?
                .label(name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(1)));
        }
        // A failed drill is ringed in red, whatever failed it.
        let failed = drills.iter().enumerate().filter(|(_, d)| !d.verdict.passed());
        let at = |d: &DrillEntry| {
            d.verdict.rto.as_ref().or(d.verdict.rpo.as_ref()).map_or(bottom, |o| o.measured_seconds.max(bottom))
        };
        chart.draw_series(failed.map(|(i, d)| Circle::new((i, at(d)), 8, RED.stroke_width(2)))).ok()?;
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    Some(out)
}
