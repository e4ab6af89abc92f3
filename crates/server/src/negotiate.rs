//! Content negotiation: picks the best offered media type for an `Accept` header.

/// Returns the offer that the `Accept` header prefers (highest q, then the order of `offers`),
/// `Some(default)` when there is no header, `None` when nothing offered is acceptable.
pub fn negotiate<T: Copy>(accept: Option<&str>, offers: &[(&str, T)], default: T) -> Option<T> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else { return Some(default) };
    let mut best: Option<(f32, usize, T)> = None;
    for range in accept.split(',') {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for param in parts {
            if let Some(v) = param.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        for (i, (offer, value)) in offers.iter().enumerate() {
            let (otype, _) = offer.split_once('/').unwrap_or((offer, ""));
            let matches = media == *offer || media == "*/*" || media.strip_suffix("/*").is_some_and(|t| t == otype);
            // an exact match beats a wildcard of the same q
            let rank = if media == *offer { i } else { i + offers.len() };
            if matches && best.is_none_or(|(bq, bi, _)| q > bq || (q == bq && rank < bi)) {
                best = Some((q, rank, *value));
            }
        }
    }
    best.map(|(_, _, v)| v)
}

#[cfg(test)]
mod tests {
    use super::negotiate;

    #[test]
    fn picks_by_quality_then_order() {
        let offers = [("text/turtle", 1), ("application/ld+json", 2)];
        assert_eq!(negotiate(None, &offers, 1), Some(1));
        assert_eq!(negotiate(Some("application/ld+json"), &offers, 1), Some(2));
        assert_eq!(negotiate(Some("text/turtle;q=0.5, application/ld+json"), &offers, 1), Some(2));
        assert_eq!(negotiate(Some("*/*"), &offers, 1), Some(1));
        assert_eq!(negotiate(Some("application/*"), &offers, 1), Some(2));
        assert_eq!(negotiate(Some("image/png"), &offers, 1), None);
        assert_eq!(negotiate(Some("text/html, */*;q=0.1"), &offers, 1), Some(1));
    }
}
