//! The AWS Region a request was sent to, read from its `Host` header: which regional S3
//! endpoint the client called (`s3.eu-west-1.amazonaws.com`, a dual-stack, FIPS, access
//! point, Object Lambda, S3 Express or VPC endpoint host) or the legacy global endpoint,
//! which is `us-east-1`. No lookups; [`endpoint_region_cached`] remembers the last few
//! hosts per thread, since one log object's requests come through a few.

use std::cell::RefCell;

use crate::recent::RecentAnswers;

/// The legacy global endpoint (`s3.amazonaws.com`, `s3-external-1.amazonaws.com`) serves
/// `us-east-1`.
const GLOBAL_ENDPOINT_REGION: &str = "us-east-1";

/// The AWS Region in an S3 host header, or `None` for a host that is not an AWS S3
/// endpoint (an S3-compatible provider, an IP address, a custom domain) or names no
/// single Region (Transfer Acceleration and Multi-Region Access Point hosts).
///
/// A port (`:443`) is ignored; names compare case-insensitively and the Region is returned
/// as written.
pub fn endpoint_region(host: &str) -> Option<&str> {
    let host = strip_port(host.trim()).trim_end_matches('.');
    let name = strip_suffix_ignore_case(host, ".amazonaws.com")
        .or_else(|| strip_suffix_ignore_case(host, ".amazonaws.com.cn"))?;
    // VPC interface endpoints: `bucket.vpce-0a1b-2c3d.s3.us-east-1.vpce.amazonaws.com`.
    let name = strip_suffix_ignore_case(name, ".vpce").unwrap_or(name);
    let mut labels = name.rsplit('.');
    let last = labels.next()?;
    if is_region(last) {
        // `s3.REGION`, `s3.dualstack.REGION`, `ap.s3-accesspoint-fips.REGION`,
        // `b.s3express-usw2-az1.REGION`, ...: some label to the left names S3.
        return labels.any(is_s3_label).then_some(last);
    }
    // The older dash forms: `s3-REGION`, `s3-website-REGION`, `s3-fips-REGION`.
    for prefix in ["s3-website-", "s3-fips-", "s3-"] {
        if let Some(region) = strip_prefix_ignore_case(last, prefix)
            && is_region(region)
        {
            return Some(region);
        }
    }
    ["s3", "s3-external-1"]
        .iter()
        .any(|global| last.eq_ignore_ascii_case(global))
        .then_some(GLOBAL_ENDPOINT_REGION)
}

/// How many recent hosts each thread remembers: a log object's requests come through a
/// few host names (one bucket, addressed a few ways).
const REMEMBERED_HOSTS: usize = 4;

/// Hosts up to this length are remembered.
const MAX_REMEMBERED_HOST: usize = 255;

/// A region found in a host: a slice of it, or the global endpoint's.
#[derive(Clone, Copy)]
enum Found {
    Slice(usize, usize),
    Global,
}

thread_local! {
    /// The Region of this thread's recent hosts, so the next record with the same host
    /// costs one comparison.
    static RECENT_HOSTS: RefCell<RecentAnswers<Option<Found>, REMEMBERED_HOSTS>> =
        RefCell::new(RecentAnswers::default());
}

/// [`endpoint_region`], remembering the last few hosts of this thread.
pub fn endpoint_region_cached(host: &str) -> Option<&str> {
    let cached = RECENT_HOSTS.with_borrow(|recent| recent.get(host).copied());
    let found = match cached {
        Some(found) => found,
        None => {
            let found = endpoint_region(host).map(|region| {
                // The region is either part of the host or the global endpoint's.
                let start = (region.as_ptr() as usize).wrapping_sub(host.as_ptr() as usize);
                match start.checked_add(region.len()) {
                    Some(end) if end <= host.len() => Found::Slice(start, end),
                    _ => Found::Global,
                }
            });
            if host.len() <= MAX_REMEMBERED_HOST {
                RECENT_HOSTS.with_borrow_mut(|recent| recent.remember(host, found));
            }
            found
        }
    };
    match found? {
        Found::Slice(start, end) => host.get(start..end),
        Found::Global => Some(GLOBAL_ENDPOINT_REGION),
    }
}

/// `s3`, `s3-fips`, `s3-accesspoint`, `s3-object-lambda`, `s3express-...`, `s3-website`, ...
fn is_s3_label(label: &str) -> bool {
    label.len() >= 2 && label.as_bytes()[..2].eq_ignore_ascii_case(b"s3")
}

/// `us-east-1`, `eu-central-2`, `us-gov-west-1`, `cn-north-1`, `ap-southeast-5`, ...:
/// two letters, one or more letter-only parts, and a number, joined by dashes.
fn is_region(label: &str) -> bool {
    let Some((country, rest)) = label.split_once('-') else {
        return false;
    };
    let Some((middle, number)) = rest.rsplit_once('-') else {
        return false;
    };
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_alphabetic())
        && middle
            .split('-')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphabetic()))
        && !number.is_empty()
        && number.len() <= 2
        && number.bytes().all(|b| b.is_ascii_digit())
}

/// `host:port` → `host`; a bracketed IPv6 literal keeps its brackets (and so matches
/// nothing).
fn strip_port(host: &str) -> &str {
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

fn strip_suffix_ignore_case<'a>(s: &'a str, suffix: &str) -> Option<&'a str> {
    let split = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(split) && s[split..].eq_ignore_ascii_case(suffix)).then(|| &s[..split])
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.is_char_boundary(prefix.len())
        && s[..prefix.len()].eq_ignore_ascii_case(prefix))
    .then(|| &s[prefix.len()..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_from_every_s3_host_shape() {
        let cases: &[(&str, Option<&str>)] = &[
            // Regional, path style and virtual-hosted style.
            ("s3.eu-west-1.amazonaws.com", Some("eu-west-1")),
            ("my-bucket.s3.eu-west-1.amazonaws.com", Some("eu-west-1")),
            (
                "my.dotted.bucket.s3.ap-southeast-2.amazonaws.com",
                Some("ap-southeast-2"),
            ),
            // Dual-stack.
            (
                "bucket.s3.dualstack.us-west-2.amazonaws.com",
                Some("us-west-2"),
            ),
            ("s3.dualstack.us-west-2.amazonaws.com", Some("us-west-2")),
            // Access points, plain, dual-stack and FIPS.
            (
                "myap-123456789012.s3-accesspoint.us-west-2.amazonaws.com",
                Some("us-west-2"),
            ),
            (
                "myap-123456789012.s3-accesspoint.dualstack.eu-north-1.amazonaws.com",
                Some("eu-north-1"),
            ),
            (
                "myap-123456789012.s3-accesspoint-fips.us-east-2.amazonaws.com",
                Some("us-east-2"),
            ),
            (
                "myap-123456789012.s3-accesspoint-fips.dualstack.us-gov-west-1.amazonaws.com",
                Some("us-gov-west-1"),
            ),
            // FIPS endpoints.
            ("s3-fips.us-gov-west-1.amazonaws.com", Some("us-gov-west-1")),
            ("bucket.s3-fips.us-east-1.amazonaws.com", Some("us-east-1")),
            (
                "s3-fips.dualstack.us-east-2.amazonaws.com",
                Some("us-east-2"),
            ),
            ("s3-fips-us-gov-west-1.amazonaws.com", Some("us-gov-west-1")),
            // Object Lambda, S3 Express, control and website endpoints.
            (
                "olap-123456789012.s3-object-lambda.eu-central-1.amazonaws.com",
                Some("eu-central-1"),
            ),
            (
                "b--usw2-az1--x-s3.s3express-usw2-az1.us-west-2.amazonaws.com",
                Some("us-west-2"),
            ),
            (
                "123456789012.s3-control.us-east-1.amazonaws.com",
                Some("us-east-1"),
            ),
            (
                "bucket.s3-website-us-east-1.amazonaws.com",
                Some("us-east-1"),
            ),
            (
                "bucket.s3-website.eu-west-3.amazonaws.com",
                Some("eu-west-3"),
            ),
            // The older dash form.
            ("s3-eu-west-1.amazonaws.com", Some("eu-west-1")),
            ("bucket.s3-sa-east-1.amazonaws.com", Some("sa-east-1")),
            // VPC interface endpoints and China.
            (
                "bucket.vpce-0a1b2c3d-4e5f6a7b.s3.us-east-1.vpce.amazonaws.com",
                Some("us-east-1"),
            ),
            ("s3.cn-north-1.amazonaws.com.cn", Some("cn-north-1")),
            // The legacy global endpoint is us-east-1.
            ("s3.amazonaws.com", Some("us-east-1")),
            ("my-bucket.s3.amazonaws.com", Some("us-east-1")),
            ("s3-external-1.amazonaws.com", Some("us-east-1")),
            // Ports, case and a trailing dot.
            ("s3.eu-west-1.amazonaws.com:443", Some("eu-west-1")),
            ("Bucket.S3.EU-West-1.AmazonAWS.com", Some("EU-West-1")),
            ("s3.us-east-2.amazonaws.com.", Some("us-east-2")),
            // No single Region.
            ("bucket.s3-accelerate.amazonaws.com", None),
            ("bucket.s3-accelerate.dualstack.amazonaws.com", None),
            (
                "mfzwi23gnjvgw.mrap.accesspoint.s3-global.amazonaws.com",
                None,
            ),
            // Not AWS S3.
            ("s3.wasabisys.com", None),
            ("s3.us-west-001.backblazeb2.com", None),
            ("storage.googleapis.com", None),
            ("s3.eu-west-1.amazonaws.com.evil.example", None),
            ("ec2.eu-west-1.amazonaws.com", None),
            ("192.0.2.10", None),
            ("192.0.2.10:9000", None),
            ("[2001:db8::1]:443", None),
            ("localhost", None),
            ("", None),
        ];
        for &(host, expected) in cases {
            assert_eq!(endpoint_region(host), expected, "{host}");
        }
    }

    #[test]
    fn the_cached_lookup_agrees_with_the_plain_one_host_after_host() {
        let hosts = [
            "s3.eu-west-1.amazonaws.com",
            "s3.eu-west-1.amazonaws.com",
            "s3.amazonaws.com",
            "s3.amazonaws.com",
            "storage.example.net",
            "s3.eu-west-1.amazonaws.com",
            "bucket.s3-us-west-2.amazonaws.com:443",
            "",
            "",
            // More hosts than are remembered, then the first ones again.
            "s3.ap-south-1.amazonaws.com",
            "x.s3-website-eu-west-2.amazonaws.com",
            "s3-external-1.amazonaws.com",
            "s3.eu-west-1.amazonaws.com",
            "s3.amazonaws.com",
        ];
        for host in hosts {
            // A copy, so a cached answer cannot point into the previous record's text.
            let owned = host.to_string();
            assert_eq!(
                endpoint_region_cached(&owned),
                endpoint_region(host),
                "{host}"
            );
        }
    }

    #[test]
    fn region_shapes() {
        for region in [
            "us-east-1",
            "us-gov-west-1",
            "ap-southeast-5",
            "il-central-1",
        ] {
            assert!(is_region(region), "{region}");
        }
        for label in [
            "us-east",
            "east-1",
            "us--1",
            "us-east-123",
            "s3",
            "usw2-az1",
            "u1-east-1",
        ] {
            assert!(!is_region(label), "{label}");
        }
    }
}
