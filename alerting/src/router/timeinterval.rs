//! Alertmanager time intervals (`time_intervals`, `mute_time_intervals`): times of day, weekdays, days
//! of the month, months and years, each a list of values or `a:b` ranges; an interval matches when all
//! of its given fields match. Times are evaluated in UTC (`location: UTC` or none).

use serde_yaml_ng::Value as Yaml;

/// One entry of a named interval's `time_intervals` list.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TimeSpec {
    /// Minutes of the day, `[start, end)`.
    pub times: Vec<(u32, u32)>,
    /// 0 = Sunday.
    pub weekdays: Vec<(u32, u32)>,
    /// 1-based; negative counts from the month's end (-1 = last day).
    pub days_of_month: Vec<(i32, i32)>,
    pub months: Vec<(u32, u32)>,
    pub years: Vec<(i64, i64)>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

fn strings(v: &Yaml, key: &str) -> Result<Vec<String>, String> {
    match v.get(key) {
        None | Some(Yaml::Null) => Ok(Vec::new()),
        Some(Yaml::Sequence(s)) => s
            .iter()
            .map(|x| match x {
                Yaml::String(s) => Ok(s.clone()),
                Yaml::Number(n) => Ok(n.to_string()),
                _ => Err(format!("{key}: expected strings")),
            })
            .collect(),
        Some(_) => Err(format!("{key}: expected a list")),
    }
}

fn range<T: Copy + PartialOrd + std::fmt::Display>(
    s: &str,
    one: &dyn Fn(&str) -> Result<T, String>,
) -> Result<(T, T), String> {
    let (a, b) = match s.split_once(':') {
        Some((a, b)) if !a.is_empty() && !b.is_empty() => (one(a.trim())?, one(b.trim())?),
        _ => {
            let x = one(s.trim())?;
            (x, x)
        }
    };
    Ok((a, b))
}

fn minutes(s: &str) -> Result<u32, String> {
    let (h, m) = s
        .split_once(':')
        .ok_or_else(|| format!("invalid time {s:?} (HH:MM)"))?;
    let (h, m): (u32, u32) = (
        h.parse().map_err(|_| format!("invalid time {s:?}"))?,
        m.parse().map_err(|_| format!("invalid time {s:?}"))?,
    );
    if h > 24 || m > 59 || (h == 24 && m != 0) {
        return Err(format!("invalid time {s:?}"));
    }
    Ok(h * 60 + m)
}

impl TimeSpec {
    pub fn parse(v: &Yaml) -> Result<TimeSpec, String> {
        if let Some(loc) = v.get("location").and_then(|l| l.as_str())
            && loc != "UTC"
        {
            return Err(format!(
                "time interval location {loc:?} is not supported: only UTC"
            ));
        }
        let mut t = TimeSpec::default();
        if let Some(Yaml::Sequence(ts)) = v.get("times") {
            for x in ts {
                let st = x
                    .get("start_time")
                    .and_then(|s| s.as_str())
                    .ok_or("times: start_time missing")?;
                let en = x
                    .get("end_time")
                    .and_then(|s| s.as_str())
                    .ok_or("times: end_time missing")?;
                let (a, b) = (minutes(st)?, minutes(en)?);
                if a >= b {
                    return Err(format!("start_time {st} must be before end_time {en}"));
                }
                t.times.push((a, b));
            }
        }
        let day = |s: &str| -> Result<u32, String> {
            WEEKDAYS
                .iter()
                .position(|d| *d == s.to_ascii_lowercase())
                .map(|i| i as u32)
                .ok_or_else(|| format!("invalid weekday {s:?}"))
        };
        for s in strings(v, "weekdays")? {
            t.weekdays.push(range(&s, &day)?);
        }
        let dom = |s: &str| -> Result<i32, String> {
            let n: i32 = s
                .parse()
                .map_err(|_| format!("invalid day of month {s:?}"))?;
            if n == 0 || !(-31..=31).contains(&n) {
                return Err(format!("invalid day of month {s:?}"));
            }
            Ok(n)
        };
        for s in strings(v, "days_of_month")? {
            // Ranges like "-3:-1" start with a minus: split on the colon that separates two numbers.
            let r = match s.char_indices().skip(1).find(|(_, c)| *c == ':') {
                Some((i, _)) => (dom(&s[..i])?, dom(&s[i + 1..])?),
                None => {
                    let x = dom(&s)?;
                    (x, x)
                }
            };
            t.days_of_month.push(r);
        }
        let month = |s: &str| -> Result<u32, String> {
            if let Ok(n) = s.parse::<u32>()
                && (1..=12).contains(&n)
            {
                return Ok(n);
            }
            MONTHS
                .iter()
                .position(|m| *m == s.to_ascii_lowercase())
                .map(|i| i as u32 + 1)
                .ok_or_else(|| format!("invalid month {s:?}"))
        };
        for s in strings(v, "months")? {
            t.months.push(range(&s, &month)?);
        }
        let year = |s: &str| -> Result<i64, String> {
            s.parse().map_err(|_| format!("invalid year {s:?}"))
        };
        for s in strings(v, "years")? {
            t.years.push(range(&s, &year)?);
        }
        Ok(t)
    }

    /// Whether `ms` (Unix milliseconds) falls in this interval, in UTC.
    pub fn contains(&self, ms: i64) -> bool {
        let secs = ms.div_euclid(1000);
        let days = secs.div_euclid(86_400);
        let minute = (secs.rem_euclid(86_400) / 60) as u32;
        let (y, m, d) = vigil_model::civil_from_days(days);
        let weekday = (days + 4).rem_euclid(7) as u32;
        let dim = vigil_model::days_in_month(y, m) as i32;
        let ok_times =
            self.times.is_empty() || self.times.iter().any(|(a, b)| minute >= *a && minute < *b);
        let ok_wd = self.weekdays.is_empty()
            || self
                .weekdays
                .iter()
                .any(|(a, b)| weekday >= *a && weekday <= *b);
        let ok_dom = self.days_of_month.is_empty()
            || self.days_of_month.iter().any(|(a, b)| {
                let fix = |x: i32| if x < 0 { dim + 1 + x } else { x.min(dim) };
                let (a, b) = (fix(*a), fix(*b));
                d as i32 >= a && d as i32 <= b
            });
        let ok_m = self.months.is_empty() || self.months.iter().any(|(a, b)| m >= *a && m <= *b);
        let ok_y = self.years.is_empty() || self.years.iter().any(|(a, b)| y >= *a && y <= *b);
        ok_times && ok_wd && ok_dom && ok_m && ok_y
    }
}

/// A named interval: active when any of its entries contains the time.
#[derive(Clone, Debug, PartialEq)]
pub struct NamedInterval {
    pub name: String,
    pub specs: Vec<TimeSpec>,
}

impl NamedInterval {
    pub fn contains(&self, ms: i64) -> bool {
        self.specs.iter().any(|s| s.contains(ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(y: &str) -> TimeSpec {
        TimeSpec::parse(&serde_yaml_ng::from_str(y).unwrap()).unwrap()
    }

    // 2023-11-14 (a Tuesday) 22:13:20 UTC
    const T: i64 = 1_700_000_000_000;

    #[test]
    fn fields_match_like_alertmanager() {
        assert!(spec("times: [{start_time: '22:00', end_time: '24:00'}]").contains(T));
        assert!(!spec("times: [{start_time: '09:00', end_time: '17:00'}]").contains(T));
        assert!(spec("weekdays: ['monday:friday']").contains(T));
        assert!(!spec("weekdays: ['saturday', 'sunday']").contains(T));
        assert!(spec("days_of_month: ['10:20']").contains(T));
        assert!(!spec("days_of_month: ['-3:-1']").contains(T));
        assert!(spec("months: ['november']").contains(T));
        assert!(spec("months: ['9:12']").contains(T));
        assert!(spec("years: ['2020:2023']").contains(T));
        assert!(!spec("years: ['2024']").contains(T));
        assert!(
            !spec("weekdays: [tuesday]\ntimes: [{start_time: '00:00', end_time: '08:00'}]")
                .contains(T),
            "all fields must match"
        );
        assert!(
            TimeSpec::parse(&serde_yaml_ng::from_str("location: 'Europe/Berlin'").unwrap())
                .is_err()
        );
        assert!(TimeSpec::parse(&serde_yaml_ng::from_str("weekdays: [funday]").unwrap()).is_err());
        assert!(
            TimeSpec::parse(
                &serde_yaml_ng::from_str("times: [{start_time: '10:00', end_time: '09:00'}]")
                    .unwrap()
            )
            .is_err()
        );
    }
}
