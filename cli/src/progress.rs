//! Progress as Docker Compose draws it: a line per service and step (`✔ Service web  Started`), with a
//! spinner while a step is under way on a terminal, and plain lines otherwise (CI, pipes).

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use cluster::project::{Progress, Step};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

pub struct Lines {
    bars: Option<(MultiProgress, Mutex<HashMap<String, ProgressBar>>)>,
}

impl Lines {
    pub fn new() -> Self {
        let bars = std::io::stderr().is_terminal().then(|| (MultiProgress::new(), Mutex::new(HashMap::new())));
        Lines { bars }
    }
}

/// Steps after which nothing more happens to the line.
fn is_final(step: &Step) -> bool {
    matches!(
        step,
        Step::Built
            | Step::Shipped
            | Step::Healthy
            | Step::Completed
            | Step::Stopped
            | Step::Removed
            | Step::Orphan
            | Step::Started
            | Step::Unchanged
    )
}

impl Progress for Lines {
    fn step(&self, what: &str, step: Step) {
        let done = is_final(&step);
        let mark = if done { "✔" } else { "⠿" };
        match &self.bars {
            None => eprintln!(" {mark} {what:<28} {step}"),
            Some((multi, bars)) => {
                let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
                let bar = bars.entry(what.to_owned()).or_insert_with(|| {
                    let bar = multi.add(ProgressBar::new_spinner());
                    bar.set_style(
                        ProgressStyle::with_template(" {spinner} {prefix:<28} {msg}").expect("valid template"),
                    );
                    bar.set_prefix(what.to_owned());
                    bar.enable_steady_tick(Duration::from_millis(100));
                    bar
                });
                if done {
                    bar.set_style(ProgressStyle::with_template(" ✔ {prefix:<28} {msg}").expect("valid template"));
                }
                bar.set_message(step.to_string());
                if done && !matches!(step, Step::Started) {
                    bar.finish();
                }
            }
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        if let Some((_, bars)) = &self.bars {
            for bar in bars.lock().unwrap_or_else(|e| e.into_inner()).values() {
                bar.finish();
            }
        }
    }
}
