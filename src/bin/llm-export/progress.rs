//! A progress bar on stderr driven by export events; silent when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use llm_export::export::Event;

pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(show: bool) -> Self {
        let bar = show.then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {wide_bar} {percent:>3}% {msg}",
                )
                .expect("valid template"),
            );
            bar
        });
        Bar { bar }
    }

    pub fn on_event(&self, event: Event) {
        let Some(bar) = &self.bar else { return };
        match event {
            Event::Start { total, .. } => bar.set_length(total),
            Event::Tensor { name, .. } => bar.set_message(name.to_string()),
            Event::Advance(n) => bar.inc(n),
            Event::Finishing => bar.set_message("writing metadata"),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
