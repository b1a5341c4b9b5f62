//! Progress for commands that take a while (`herald demo`, `herald dlq replay --all`): a bar
//! on standard error when it is a terminal, nothing at all when it is a pipe or a file, so
//! scripts and logs see only the command's own lines.

use std::io::IsTerminal as _;

use indicatif::{ProgressBar, ProgressStyle};

/// A bar counting to `len`, labelled with `what`; hidden unless standard error is a terminal.
pub fn bar(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(what.to_owned());
    // The template is a constant; a typo in it would show at the first run on a terminal.
    if let Ok(style) = ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}") {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
