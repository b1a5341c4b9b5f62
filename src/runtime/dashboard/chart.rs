//! Bar charts of the last hour, drawn on the server as plain SVG shapes: one bar per minute
//! for uploads, and one stacked bar per minute for deliveries sent and failed.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use crate::trace::{DeliveryStep, EventTrace, Step};

/// Bars per chart: one a minute over the last hour.
const BARS: usize = 60;

/// Seconds each bar covers.
const BAR_SECS: i64 = 60;

/// Chart size in SVG units; the page scales it to its width.
const WIDTH: u32 = 600;
const HEIGHT: u32 = 120;

/// A chart ready for the template: rectangles with their tooltip, and the axis labels.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Chart {
    /// What the chart counts.
    pub title: &'static str,
    /// SVG width and height.
    pub width: u32,
    pub height: u32,
    /// The tallest bar's count, for the axis label.
    pub max: u32,
    /// Every non-empty rectangle.
    pub bars: Vec<Bar>,
    /// The series, for the legend.
    pub legend: Vec<Series>,
}

/// One rectangle.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Bar {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The series' CSS class.
    pub class: &'static str,
    /// The tooltip, e.g. `3 sent, 12 min ago`.
    pub label: String,
}

/// A series name and its CSS class.
#[derive(Debug, Clone, Serialize)]
pub(super) struct Series {
    pub name: &'static str,
    pub class: &'static str,
}

/// Counts per minute, oldest first, for each series.
struct Counts {
    series: Vec<(Series, [u32; BARS])>,
}

/// The uploads chart and the deliveries chart for the hour before `now`.
pub(super) fn charts(traces: &[EventTrace], now: Timestamp) -> [Chart; 2] {
    let slot = |at: Timestamp| slot(at, now);
    let mut uploads = [0u32; BARS];
    let (mut sent, mut failed) = ([0u32; BARS], [0u32; BARS]);
    for trace in traces {
        if let Some(i) = slot(trace.first_at) {
            uploads[i] += 1;
        }
        for line in &trace.lines {
            let Some(i) = slot(line.at) else { continue };
            for step in &line.steps {
                match step {
                    Step::Delivery {
                        outcome: DeliveryStep::Sent { .. },
                        ..
                    } => sent[i] += 1,
                    Step::Delivery {
                        outcome: DeliveryStep::Failed { .. },
                        ..
                    } => failed[i] += 1,
                    _ => {}
                }
            }
        }
    }
    let series = |name, class, counts| (Series { name, class }, counts);
    let uploads = Counts {
        series: vec![series("uploads", "uploads", uploads)],
    };
    let deliveries = Counts {
        series: vec![
            series("sent", "sent", sent),
            series("failed", "failed", failed),
        ],
    };
    [
        draw("Uploads per minute, last hour", uploads),
        draw("Deliveries per minute, last hour", deliveries),
    ]
}

/// Which bar `at` falls in, `None` outside the hour.
fn slot(at: Timestamp, now: Timestamp) -> Option<usize> {
    let ago = now.duration_since(at);
    if ago < SignedDuration::ZERO {
        // A clock step or another process's clock: count it as now.
        return Some(BARS - 1);
    }
    let bars_ago = usize::try_from(ago.as_secs() / BAR_SECS).ok()?;
    (bars_ago < BARS).then(|| BARS - 1 - bars_ago)
}

/// Stacks the series bar by bar, scaled to the tallest stack.
fn draw(title: &'static str, counts: Counts) -> Chart {
    let totals: Vec<u32> = (0..BARS)
        .map(|i| counts.series.iter().map(|(_, c)| c[i]).sum())
        .collect();
    let max = totals.iter().copied().max().unwrap_or(0);
    let step = WIDTH / u32::try_from(BARS).unwrap_or(1);
    let mut bars = Vec::new();
    for i in 0..BARS {
        let mut top = HEIGHT;
        for (series, values) in &counts.series {
            let count = values[i];
            if count == 0 {
                continue;
            }
            // At least one unit tall, so a single upload in a busy hour still shows.
            let scaled = u64::from(count) * u64::from(HEIGHT) / u64::from(max.max(1));
            let height = u32::try_from(scaled).unwrap_or(HEIGHT).max(1);
            top = top.saturating_sub(height);
            let ago = BARS - 1 - i;
            bars.push(Bar {
                x: u32::try_from(i).unwrap_or(0) * step,
                y: top,
                width: step.saturating_sub(1),
                height,
                class: series.class,
                label: format!("{count} {}, {ago} min ago", series.name),
            });
        }
    }
    Chart {
        title,
        width: WIDTH,
        height: HEIGHT,
        max,
        bars,
        legend: counts.series.into_iter().map(|(s, _)| s).collect(),
    }
}

#[cfg(test)]
mod tests {
    use jiff::{SignedDuration, Timestamp};

    use super::{BARS, Counts, Series, draw, slot};

    #[test]
    fn each_minute_of_the_hour_has_its_bar_and_older_times_none() {
        let now = Timestamp::now();
        let ago = |secs| {
            now.checked_sub(SignedDuration::from_secs(secs))
                .unwrap_or(now)
        };
        assert_eq!(slot(now, now), Some(BARS - 1));
        assert_eq!(slot(ago(59), now), Some(BARS - 1));
        assert_eq!(slot(ago(61), now), Some(BARS - 2));
        assert_eq!(slot(ago(59 * 60 + 59), now), Some(0));
        assert_eq!(slot(ago(3600), now), None);
        // A clock a little ahead of ours still counts as now.
        let ahead = now.checked_add(SignedDuration::from_secs(5)).unwrap_or(now);
        assert_eq!(slot(ahead, now), Some(BARS - 1));
    }

    #[test]
    fn stacked_bars_scale_to_the_tallest_minute() {
        let (mut sent, mut failed) = ([0u32; BARS], [0u32; BARS]);
        sent[BARS - 1] = 3;
        failed[BARS - 1] = 1;
        sent[0] = 1;
        let series = vec![
            (
                Series {
                    name: "sent",
                    class: "sent",
                },
                sent,
            ),
            (
                Series {
                    name: "failed",
                    class: "failed",
                },
                failed,
            ),
        ];
        let chart = draw("deliveries", Counts { series });
        assert_eq!(chart.max, 4);
        let heights: Vec<(u32, &str)> = chart.bars.iter().map(|b| (b.height, b.class)).collect();
        assert_eq!(heights, [(30, "sent"), (90, "sent"), (30, "failed")]);
        // The failed part sits on top of the sent part of the same minute.
        assert_eq!(chart.bars[2].y + chart.bars[2].height, chart.bars[1].y);
        assert_eq!(chart.bars[2].label, "1 failed, 0 min ago");
    }
}
