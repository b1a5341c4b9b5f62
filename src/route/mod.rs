//! Routing: decides which rules an upload matches.
//!
//! Rules are tried in file order. Every matching rule sends its own email unless a matching
//! rule says `stop`; fallback rules are tried only when no ordinary rule matched.

use std::fmt;

use globset::GlobSet;

use crate::config::Rule;
use crate::event::ObjectCreated;

/// The match half of a rule: every field that is set must hold.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    /// Bucket names; empty matches any bucket.
    pub buckets: Vec<String>,
    /// Key prefixes, case-sensitive; empty matches any key.
    pub prefixes: Vec<String>,
    /// Key suffixes, stored lowercased because suffixes match case-insensitively.
    pub suffixes: Vec<String>,
    /// Globs over the whole key.
    pub globs: Option<GlobSet>,
    /// Smallest size in bytes that matches.
    pub min_size: Option<u64>,
    /// Largest size in bytes that matches.
    pub max_size: Option<u64>,
}

/// Why a rule did not match an upload: the first check that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The bucket is not one of the rule's buckets.
    Bucket,
    /// The key starts with none of the rule's prefixes.
    Prefix,
    /// The key ends with none of the rule's suffixes.
    Suffix,
    /// The key matches none of the rule's globs.
    Glob,
    /// The object is smaller than `min_size_bytes`.
    TooSmall,
    /// The object is larger than `max_size_bytes`.
    TooLarge,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mismatch::Bucket => "bucket differs",
            Mismatch::Prefix => "prefix differs",
            Mismatch::Suffix => "suffix differs",
            Mismatch::Glob => "glob does not match",
            Mismatch::TooSmall => "smaller than min_size_bytes",
            Mismatch::TooLarge => "larger than max_size_bytes",
        })
    }
}

impl Matcher {
    /// Checks every condition in a fixed order and names the first that fails.
    pub fn check(&self, event: &ObjectCreated) -> Result<(), Mismatch> {
        let key = event.key.as_str();
        if !self.buckets.is_empty() && !self.buckets.contains(&event.bucket) {
            return Err(Mismatch::Bucket);
        }
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| key.starts_with(p)) {
            return Err(Mismatch::Prefix);
        }
        if !self.suffixes.is_empty() && !ends_with_any_ignoring_case(key, &self.suffixes) {
            return Err(Mismatch::Suffix);
        }
        if self
            .globs
            .as_ref()
            .is_some_and(|globs| !globs.is_match(key))
        {
            return Err(Mismatch::Glob);
        }
        if self.min_size.is_some_and(|min| event.size < min) {
            return Err(Mismatch::TooSmall);
        }
        if self.max_size.is_some_and(|max| event.size > max) {
            return Err(Mismatch::TooLarge);
        }
        Ok(())
    }
}

impl Matcher {
    /// Every condition that fails, in the order [`check`](Matcher::check) tries them, each
    /// with what the rule wants: how far an upload was from matching, for `herald trace`.
    pub fn misses(&self, event: &ObjectCreated) -> Vec<Near> {
        let key = event.key.as_str();
        let mut misses = Vec::new();
        let mut miss = |reason, wanted: String| misses.push(Near { reason, wanted });
        if !self.buckets.is_empty() && !self.buckets.contains(&event.bucket) {
            miss(Mismatch::Bucket, one_of(&self.buckets));
        }
        if !self.prefixes.is_empty() && !self.prefixes.iter().any(|p| key.starts_with(p)) {
            miss(
                Mismatch::Prefix,
                format!("a key starting with {}", one_of(&self.prefixes)),
            );
        }
        if !self.suffixes.is_empty() && !ends_with_any_ignoring_case(key, &self.suffixes) {
            miss(
                Mismatch::Suffix,
                format!("a key ending in {}", one_of(&self.suffixes)),
            );
        }
        if self.globs.as_ref().is_some_and(|g| !g.is_match(key)) {
            miss(Mismatch::Glob, "a key matching the rule's glob".to_owned());
        }
        if let Some(min) = self.min_size.filter(|min| event.size < *min) {
            miss(Mismatch::TooSmall, format!("at least {min} bytes"));
        }
        if let Some(max) = self.max_size.filter(|max| event.size > *max) {
            miss(Mismatch::TooLarge, format!("at most {max} bytes"));
        }
        misses
    }
}

/// One condition an upload failed, and what the rule wanted instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Near {
    /// Which condition.
    pub reason: Mismatch,
    /// What the rule wants, for people: `one of "legal", "hr"`, `at least 1024 bytes`.
    pub wanted: String,
}

/// The rule that came closest to matching: the fewest failed conditions, the earlier rule
/// on a tie, with each condition it failed. `None` when there are no rules.
pub fn closest<'a>(rules: &'a [Rule], event: &ObjectCreated) -> Option<(&'a Rule, Vec<Near>)> {
    rules
        .iter()
        .map(|rule| (rule, rule.matcher.misses(event)))
        .min_by_key(|(_, misses)| misses.len())
}

fn one_of(values: &[String]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("{v:?}")).collect();
    match quoted.as_slice() {
        [one] => one.clone(),
        _ => format!("one of {}", quoted.join(", ")),
    }
}

/// Suffixes are stored lowercased; only the key's tail is lowercased, so long keys cost little.
fn ends_with_any_ignoring_case(key: &str, suffixes: &[String]) -> bool {
    suffixes.iter().any(|suffix| {
        key.len() >= suffix.len()
            && key.is_char_boundary(key.len() - suffix.len())
            && key[key.len() - suffix.len()..].to_lowercase() == *suffix
    })
}

/// The rules an upload matched, in file order.
#[derive(Debug)]
pub enum Route<'a> {
    /// One or more rules matched; each sends an email.
    Matched(Vec<&'a Rule>),
    /// No rule matched. Each rule is listed with the reason it did not match.
    Unmatched(Vec<(&'a Rule, Mismatch)>),
}

/// Picks the rules for an upload: ordinary rules first, fallback rules only if none matched.
pub fn route<'a>(rules: &'a [Rule], event: &ObjectCreated) -> Route<'a> {
    let mut misses = Vec::new();
    for fallback in [false, true] {
        let matched = matching(
            rules.iter().filter(|r| r.fallback == fallback),
            event,
            &mut misses,
        );
        if !matched.is_empty() {
            return Route::Matched(matched);
        }
    }
    Route::Unmatched(misses)
}

/// The matching rules among `candidates`, honouring `stop`; misses are collected on the side.
fn matching<'a>(
    candidates: impl Iterator<Item = &'a Rule>,
    event: &ObjectCreated,
    misses: &mut Vec<(&'a Rule, Mismatch)>,
) -> Vec<&'a Rule> {
    let mut matched = Vec::new();
    for rule in candidates {
        match rule.matcher.check(event) {
            Ok(()) => {
                matched.push(rule);
                if rule.stop {
                    break;
                }
            }
            Err(miss) => misses.push((rule, miss)),
        }
    }
    matched
}

#[cfg(test)]
mod tests {
    use globset::{GlobBuilder, GlobSetBuilder};

    use super::*;
    use crate::config::tests::rule;
    use crate::event::tests::sample;

    fn names(route: Route<'_>) -> Vec<String> {
        match route {
            Route::Matched(rules) => rules.iter().map(|r| r.name.clone()).collect(),
            Route::Unmatched(_) => Vec::new(),
        }
    }

    #[test]
    fn each_field_reports_its_own_mismatch() {
        let event = sample("contracts/deal.PDF", 2048);
        let mut m = Matcher::default();
        assert_eq!(m.check(&event), Ok(()));
        m.buckets = vec!["legal".into()];
        assert_eq!(m.check(&event), Err(Mismatch::Bucket));
        m.buckets = vec!["uploads".into()];
        m.prefixes = vec!["reports/".into()];
        assert_eq!(m.check(&event), Err(Mismatch::Prefix));
        m.prefixes = vec!["reports/".into(), "contracts/".into()];
        m.suffixes = vec![".docx".into()];
        assert_eq!(m.check(&event), Err(Mismatch::Suffix));
        m.suffixes = vec![".pdf".into()];
        assert_eq!(m.check(&event), Ok(()), "suffix match ignores case");
        m.min_size = Some(4096);
        assert_eq!(m.check(&event), Err(Mismatch::TooSmall));
        m.min_size = Some(2048);
        m.max_size = Some(2047);
        assert_eq!(m.check(&event), Err(Mismatch::TooLarge));
    }

    #[test]
    fn glob_star_stays_within_one_folder() {
        let glob = GlobBuilder::new("raw/*.csv")
            .literal_separator(true)
            .build()
            .expect("valid glob");
        let m = Matcher {
            globs: Some(GlobSetBuilder::new().add(glob).build().expect("valid set")),
            ..Matcher::default()
        };
        assert_eq!(m.check(&sample("raw/a.csv", 1)), Ok(()));
        assert_eq!(m.check(&sample("raw/2024/a.csv", 1)), Err(Mismatch::Glob));
    }

    #[test]
    fn suffix_check_survives_multibyte_keys() {
        let m = Matcher {
            suffixes: vec![".pdf".into()],
            ..Matcher::default()
        };
        assert_eq!(m.check(&sample("東京", 1)), Err(Mismatch::Suffix));
        assert_eq!(m.check(&sample("東京.PDF", 1)), Ok(()));
    }

    #[test]
    fn every_matching_rule_fires_until_stop() {
        let mut first = rule("all");
        let second = rule("also-all");
        let event = sample("a.txt", 1);
        assert_eq!(
            names(route(&[first.clone(), second.clone()], &event)),
            ["all", "also-all"]
        );
        first.stop = true;
        assert_eq!(names(route(&[first, second], &event)), ["all"]);
    }

    #[test]
    fn fallback_fires_only_when_nothing_else_matched() {
        let mut pdfs = rule("pdfs");
        pdfs.matcher.suffixes = vec![".pdf".into()];
        let mut catch_all = rule("catch-all");
        catch_all.fallback = true;
        let rules = [catch_all, pdfs];
        assert_eq!(names(route(&rules, &sample("a.pdf", 1))), ["pdfs"]);
        assert_eq!(names(route(&rules, &sample("a.txt", 1))), ["catch-all"]);
    }

    #[test]
    fn the_closest_rule_is_the_one_with_fewest_failed_conditions() {
        let mut legal = rule("legal");
        legal.matcher.buckets = vec!["legal".into(), "hr".into()];
        legal.matcher.prefixes = vec!["contracts/".into()];
        let mut pdfs = rule("pdfs");
        pdfs.matcher.suffixes = vec![".pdf".into()];
        pdfs.matcher.min_size = Some(4096);
        let mut big = rule("big");
        big.matcher.min_size = Some(4096);
        let rules = [legal, pdfs, big];

        let event = sample("inbox/a.txt", 10);
        let (rule, misses) = closest(&rules, &event).expect("rules");
        assert_eq!(rule.name, "big");
        assert_eq!(
            misses,
            [Near {
                reason: Mismatch::TooSmall,
                wanted: "at least 4096 bytes".into()
            }]
        );
        let legal = rules[0].matcher.misses(&event);
        let wanted: Vec<&str> = legal.iter().map(|n| n.wanted.as_str()).collect();
        assert_eq!(
            wanted,
            [
                r#"one of "legal", "hr""#,
                r#"a key starting with "contracts/""#
            ]
        );
        let pdf = sample("inbox/a.pdf", 10);
        let tie = closest(&rules, &pdf).map(|(rule, _)| rule.name.as_str());
        assert_eq!(tie, Some("pdfs"), "a tie goes to the earlier rule");
        assert!(closest(&[], &event).is_none());
    }

    #[test]
    fn unmatched_lists_why_each_rule_missed() {
        let mut pdfs = rule("pdfs");
        pdfs.matcher.suffixes = vec![".pdf".into()];
        let rules = [pdfs];
        let Route::Unmatched(misses) = route(&rules, &sample("a.txt", 1)) else {
            panic!("expected no match");
        };
        assert_eq!(misses.len(), 1);
        assert_eq!(
            (misses[0].0.name.as_str(), misses[0].1),
            ("pdfs", Mismatch::Suffix)
        );
    }
}
