//! Durations and sizes as config files write them (`30m`, `1h30m`, `16MiB`), with
//! errors that say what is allowed; and `Delay`, a duration that may be zero.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span of time, written like `30m`, `5s`, `1h30m` or `250ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Duration(pub std::time::Duration);

impl Duration {
    /// Whole seconds.
    pub const fn from_secs(s: u64) -> Duration {
        Duration(std::time::Duration::from_secs(s))
    }
}

const DURATION_ALLOWED: &str =
    "a positive duration such as \"30m\", \"90s\", \"1h30m\" or \"250ms\" (units: ms, s, m, h, d)";

impl FromStr for Duration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid duration {s:?}: expected {DURATION_ALLOWED}");
        let mut total: u128 = 0;
        let mut rest = s.trim();
        if rest.is_empty() {
            return Err(bad());
        }
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
            if digits == 0 {
                return Err(bad());
            }
            let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
            rest = &rest[digits..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit())
                .unwrap_or(rest.len());
            let ms = match &rest[..unit_len] {
                "ms" => 1,
                "s" => 1000,
                "m" => 60_000,
                "h" => 3_600_000,
                "d" => 86_400_000,
                _ => return Err(bad()),
            };
            total = total
                .checked_add(n.checked_mul(ms).ok_or_else(bad)?)
                .ok_or_else(bad)?;
            rest = &rest[unit_len..];
        }
        if total == 0 || total > u64::MAX as u128 {
            return Err(bad());
        }
        Ok(Duration(std::time::Duration::from_millis(total as u64)))
    }
}

impl fmt::Display for Duration {
    /// The shortest form in the largest units: `1h30m`, `5s`, `250ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut ms = self.0.as_millis();
        if ms == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
            ("ms", 1),
        ] {
            if ms >= size {
                write!(f, "{}{unit}", ms / size)?;
                ms %= size;
            }
        }
        Ok(())
    }
}

/// A number of bytes, written like `16MiB`, `2GiB`, `500KB` or `1024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

const BYTES_ALLOWED: &str = "a size such as \"16MiB\", \"2GiB\", \"500KB\" or a number of bytes \
                             (units: B, KB, MB, GB, KiB, MiB, GiB, TiB)";

impl FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("invalid size {s:?}: expected {BYTES_ALLOWED}");
        let t = s.trim();
        let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        if split == 0 {
            return Err(bad());
        }
        let n: u64 = t[..split].parse().map_err(|_| bad())?;
        let mult: u64 = match t[split..].trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "MB" => 1000_u64.pow(2),
            "GB" => 1000_u64.pow(3),
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            "TiB" => 1 << 40,
            _ => return Err(bad()),
        };
        n.checked_mul(mult).map(ByteSize).ok_or_else(bad)
    }
}

impl ByteSize {
    /// The size for people, to one decimal: `1.5 MiB`, `512 B`.
    pub fn approx(self) -> String {
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= size {
                return format!("{:.1} {unit}", self.0 as f64 / size as f64);
            }
        }
        format!("{} B", self.0)
    }
}

impl fmt::Display for ByteSize {
    /// The largest binary unit that divides the size exactly.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (unit, size) in [
            ("TiB", 1u64 << 40),
            ("GiB", 1 << 30),
            ("MiB", 1 << 20),
            ("KiB", 1 << 10),
        ] {
            if self.0 >= size && self.0.is_multiple_of(size) {
                return write!(f, "{}{unit}", self.0 / size);
            }
        }
        write!(f, "{}B", self.0)
    }
}

macro_rules! serde_via_str {
    ($t:ty, $expect:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $t;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expect)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$t, E> {
                        v.parse().map_err(E::custom)
                    }
                    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<$t, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<$t, E> {
                        v.to_string().parse().map_err(E::custom)
                    }
                }
                d.deserialize_any(V)
            }
        }
    };
}

serde_via_str!(Duration, DURATION_ALLOWED);
serde_via_str!(ByteSize, BYTES_ALLOWED);

/// A wait that may be zero (`"0s"`: at once), written like a [`Duration`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Delay(pub std::time::Duration);

impl Delay {
    /// Whole seconds.
    pub const fn from_secs(s: u64) -> Delay {
        Delay(std::time::Duration::from_secs(s))
    }
}

const DELAY_ALLOWED: &str =
    "a duration such as \"5s\", \"1m\" or \"250ms\", or \"0s\" for none (units: ms, s, m, h, d)";

impl FromStr for Delay {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        let zero = t
            .strip_prefix('0')
            .is_some_and(|u| ["", "ms", "s", "m", "h", "d"].contains(&u));
        if zero {
            return Ok(Delay(std::time::Duration::ZERO));
        }
        t.parse::<Duration>()
            .map(|d| Delay(d.0))
            .map_err(|_| format!("invalid duration {s:?}: expected {DELAY_ALLOWED}"))
    }
}

impl fmt::Display for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        Duration(self.0).fmt(f)
    }
}

serde_via_str!(Delay, DELAY_ALLOWED);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            "30m".parse::<Duration>().unwrap(),
            Duration::from_secs(1800)
        );
        assert_eq!("1h30m".parse::<Duration>().unwrap().to_string(), "1h30m");
        assert_eq!("90s".parse::<Duration>().unwrap().to_string(), "1m30s");
        assert_eq!("250ms".parse::<Duration>().unwrap().to_string(), "250ms");
        for bad in ["", "5", "m", "5x", "0s", "-5s", "1.5h"] {
            let err = bad.parse::<Duration>().unwrap_err();
            assert!(err.contains("units: ms, s, m, h, d"), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!("16MiB".parse::<ByteSize>().unwrap(), ByteSize(16 << 20));
        assert_eq!("500KB".parse::<ByteSize>().unwrap(), ByteSize(500_000));
        assert_eq!("1024".parse::<ByteSize>().unwrap().to_string(), "1KiB");
        assert_eq!(ByteSize(1500).to_string(), "1500B");
        assert!("2 PB".parse::<ByteSize>().is_err());
        assert!("99999999999TiB".parse::<ByteSize>().is_err());
    }

    #[test]
    fn delays_may_be_zero() {
        assert_eq!("0s".parse::<Delay>().unwrap(), Delay::from_secs(0));
        assert_eq!("0".parse::<Delay>().unwrap().to_string(), "0s");
        assert_eq!("5s".parse::<Delay>().unwrap(), Delay::from_secs(5));
        assert!(
            "-1s"
                .parse::<Delay>()
                .unwrap_err()
                .contains("\"0s\" for none")
        );
    }
}
