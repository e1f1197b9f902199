//! What an agent reports about its own work: model, tokens, cost, turns, its session
//! and the tools it was denied. Money is kept in whole micro-dollars ([`Usd`]), so
//! usage sums exactly and compares for equality like every other core value. Sums
//! saturate: an absurd report (a CLI's `u64::MAX` tokens) caps at the largest count,
//! which is over every budget, and never wraps around below one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An amount of US dollars, in micro-dollars (`Usd(1_500_000)` is $1.50).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(pub u64);

impl Usd {
    /// From a float amount of dollars, as the CLIs report it (rounded; negative is 0).
    pub fn from_dollars(d: f64) -> Usd {
        if d.is_finite() && d > 0.0 {
            Usd((d * 1e6).round() as u64)
        } else {
            Usd(0)
        }
    }

    /// The sum, capped at the largest amount.
    pub fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// The amount in dollars.
    pub fn dollars(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// True for $0.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Usd {
    /// `$1.50`, `$0.0125`: cents from a dollar on, four places below it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1_000_000 || self.0 == 0 {
            write!(f, "${:.2}", self.dollars())
        } else {
            write!(f, "${:.4}", self.dollars())
        }
    }
}

impl FromStr for Usd {
    type Err = String;
    fn from_str(s: &str) -> Result<Usd, String> {
        let t = s.trim().trim_start_matches('$');
        match t.parse::<f64>() {
            Ok(d) if d.is_finite() && d >= 0.0 => Ok(Usd::from_dollars(d)),
            _ => Err(format!(
                "invalid amount {s:?}: expected dollars such as 5, 0.50 or \"$2.5\" (0 means no cap)"
            )),
        }
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(self.dollars())
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Usd, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            F(f64),
            S(String),
        }
        match Raw::deserialize(d)? {
            Raw::F(f) if f >= 0.0 => Ok(Usd::from_dollars(f)),
            Raw::F(f) => Err(serde::de::Error::custom(format!(
                "invalid amount {f}: expected dollars, at least 0 (0 means no cap)"
            ))),
            Raw::S(s) => s.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// What one agent run reported, as far as its CLI tells it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Usage {
    /// The model it ran, if reported.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// Input tokens not read from a cache.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read_tokens: u64,
    /// Input tokens written to the prompt cache.
    pub cache_write_tokens: u64,
    /// The cost, where the CLI reports one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost: Option<Usd>,
    /// Model turns.
    pub turns: u32,
    /// The CLI's session, which a retry can resume.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Tools the CLI refused to run for it, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub denied_tools: Vec<String>,
}

impl Usage {
    /// Every token it used: input, output and both cache kinds.
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// The cost, $0 when unreported.
    pub fn cost_or_zero(&self) -> Usd {
        self.cost.unwrap_or_default()
    }

    /// Adds `other`'s counts to these (for per-task and per-run totals).
    pub fn add(&mut self, other: &Usage) {
        let add = |a: &mut u64, b: u64| *a = a.saturating_add(b);
        add(&mut self.input_tokens, other.input_tokens);
        add(&mut self.output_tokens, other.output_tokens);
        add(&mut self.cache_read_tokens, other.cache_read_tokens);
        add(&mut self.cache_write_tokens, other.cache_write_tokens);
        self.turns = self.turns.saturating_add(other.turns);
        self.cost = match (self.cost, other.cost) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or_default().saturating_add(b.unwrap_or_default())),
        };
        if self.model.is_empty() {
            self.model = other.model.clone();
        }
        for t in &other.denied_tools {
            if !self.denied_tools.contains(t) {
                self.denied_tools.push(t.clone());
            }
        }
    }

    /// One line for people: `1,234 tokens, $0.0123, 3 turns`.
    pub fn summary(&self) -> String {
        let mut s = format!("{} tokens", thousands(self.tokens()));
        if let Some(c) = self.cost {
            s.push_str(&format!(", {c}"));
        }
        if self.turns > 0 {
            s.push_str(&format!(", {} turn{}", self.turns, plural(self.turns)));
        }
        if !self.denied_tools.is_empty() {
            s.push_str(&format!(", denied {}", self.denied_tools.join(", ")));
        }
        s
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_parses_prints_and_sums_exactly() {
        assert_eq!("$2.5".parse::<Usd>().unwrap(), Usd(2_500_000));
        assert_eq!("0.0016".parse::<Usd>().unwrap().to_string(), "$0.0016");
        assert_eq!(Usd(1_500_000).to_string(), "$1.50");
        assert!(
            "-1".parse::<Usd>()
                .unwrap_err()
                .contains("expected dollars")
        );
        let mut a = Usage {
            cost: Some(Usd(1)),
            input_tokens: 1000,
            ..Usage::default()
        };
        a.add(&Usage {
            cost: Some(Usd(2)),
            output_tokens: 234,
            turns: 1,
            ..Usage::default()
        });
        assert_eq!(a.cost, Some(Usd(3)));
        assert_eq!(a.summary(), "1,234 tokens, $0.0000, 1 turn");
    }

    #[test]
    fn sums_saturate_instead_of_wrapping_past_a_budget() {
        let huge = Usage {
            input_tokens: u64::MAX,
            output_tokens: u64::MAX,
            cost: Some(Usd(u64::MAX)),
            turns: u32::MAX,
            ..Usage::default()
        };
        assert_eq!(huge.tokens(), u64::MAX);
        let mut total = huge.clone();
        total.add(&huge);
        assert_eq!(total.tokens(), u64::MAX);
        assert_eq!(total.cost, Some(Usd(u64::MAX)));
        assert_eq!(total.turns, u32::MAX);
    }
}
