//! "Did you mean" for misspelt names.

/// The candidate closest to `word`, if one is close enough to be a likely typo:
/// the same name in another case or with `_`/`-` (`backoff_limit` → `backoffLimit`),
/// or within an edit distance of about a third of the word's length.
pub fn did_you_mean<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| -> String {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let w = norm(word);
    if let Some(same) = candidates.iter().find(|c| norm(c) == w) {
        return Some(same);
    }
    let len = word.chars().count();
    if len < 3 {
        return None;
    }
    let limit = (len / 3).max(1);
    candidates
        .iter()
        .map(|c| (distance(&w, &norm(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance with adjacent transpositions counted as one edit.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2 = vec![0usize; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIELDS: &[&str] = &[
        "backoffLimit",
        "ttlSecondsAfterFinished",
        "timeout",
        "targets",
    ];

    #[test]
    fn suggestions() {
        assert_eq!(did_you_mean("backoff_limit", FIELDS), Some("backoffLimit"));
        assert_eq!(did_you_mean("timout", FIELDS), Some("timeout"));
        assert_eq!(did_you_mean("tagrets", FIELDS), Some("targets"));
        assert_eq!(did_you_mean("replicas", FIELDS), None);
        assert_eq!(did_you_mean("x", FIELDS), None);
    }
}
