//! A terminal progress bar fed by engine progress reports.

use indicatif::{ProgressBar, ProgressStyle};
use ironidc_core::engine::ProgressSink;

pub struct BarProgress {
    bar: ProgressBar,
}

impl BarProgress {
    pub fn new() -> Self {
        let bar = ProgressBar::new(100);
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] [{bar:40}] {pos:>3}% {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        Self { bar }
    }
    pub fn finish(&self, msg: &str) {
        self.bar.finish_with_message(msg.to_string());
    }
}

impl ProgressSink for BarProgress {
    fn report(&self, step: &str, percent: u8) {
        self.bar.set_position(u64::from(percent.min(100)));
        self.bar.set_message(step.to_string());
    }
}
