//! Dates in the forms qmail writes, from Unix seconds, always in UTC:
//! * [`qmail_date`]: `26 Sep 1995 04:46:54 -0000` (Received lines, bounces,
//!   qmail-inject's Date:);
//! * [`ctime`]: `Tue Sep 26 04:46:54 1995` (mbox From_ lines, `last auth`);
//! * [`rfc5322`]: `Tue, 26 Sep 1995 04:46:54 +0000`.

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Broken-down UTC time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Year, e.g. 1995.
    pub year: i64,
    /// Month 1..=12.
    pub month: u32,
    /// Day 1..=31.
    pub day: u32,
    /// Hour, minute, second.
    pub hour: u32,
    /// Minute.
    pub min: u32,
    /// Second.
    pub sec: u32,
    /// Weekday name index into Thu..Wed (days since 1970-01-01 mod 7).
    wday: usize,
}

/// Converts Unix seconds to a UTC civil time (H. Hinnant's days-to-civil).
pub fn civil(t: i64) -> Civil {
    let days = t.div_euclid(86400);
    let secs = t.rem_euclid(86400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        min: (secs / 60 % 60) as u32,
        sec: (secs % 60) as u32,
        wday: days.rem_euclid(7) as usize,
    }
}

/// `26 Sep 1995 04:46:54 -0000`.
pub fn qmail_date(t: i64) -> String {
    let c = civil(t);
    format!(
        "{} {} {} {:02}:{:02}:{:02} -0000",
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.min,
        c.sec
    )
}

/// `Tue Sep 26 04:46:54 1995` (asctime without the newline).
pub fn ctime(t: i64) -> String {
    let c = civil(t);
    format!(
        "{} {} {:2} {:02}:{:02}:{:02} {}",
        DAYS[c.wday],
        MONTHS[(c.month - 1) as usize],
        c.day,
        c.hour,
        c.min,
        c.sec,
        c.year
    )
}

/// `Tue, 26 Sep 1995 04:46:54 +0000`.
pub fn rfc5322(t: i64) -> String {
    let c = civil(t);
    format!(
        "{}, {} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[c.wday],
        c.day,
        MONTHS[(c.month - 1) as usize],
        c.year,
        c.hour,
        c.min,
        c.sec
    )
}

/// Seconds since the epoch, now. `VQMAIL_NOW` (decimal seconds) overrides the
/// clock for tests of time-dependent behaviour (retry schedules, the POP3 poll
/// limit, the POP-before-SMTP window); it is ignored by setuid programs.
pub fn now() -> i64 {
    if !crate::sys::is_setid() {
        if let Some(t) = std::env::var("VQMAIL_NOW")
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
        {
            return t;
        }
    }
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qmail_examples() {
        // 26 Sep 1995 04:46:54 UTC, a Tuesday.
        let t = 812_090_814;
        assert_eq!(qmail_date(t), "26 Sep 1995 04:46:54 -0000");
        assert_eq!(ctime(t), "Tue Sep 26 04:46:54 1995");
        assert_eq!(rfc5322(t), "Tue, 26 Sep 1995 04:46:54 +0000");
        assert_eq!(qmail_date(0), "1 Jan 1970 00:00:00 -0000");
        assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    }
}
