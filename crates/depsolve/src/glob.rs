//! Version globs from blueprints, and the edit distance used for name suggestions.

/// Whether `version` matches `glob` (`*` = any run, `?` = one character), either as a
/// whole or without its epoch: `2.4.*` matches `1:2.4.1-1`.
pub(crate) fn version_matches(glob: &str, version: &str) -> bool {
    if matches(glob.as_bytes(), version.as_bytes()) {
        return true;
    }
    match version.split_once(':') {
        Some((epoch, rest)) if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) => {
            matches(glob.as_bytes(), rest.as_bytes())
        }
        _ => false,
    }
}

/// [`version_matches`], or `glob` is `VERSION.ARCH` with `ARCH` the package's own
/// architecture: the `[epoch:]version-release.arch` a weldr freeze gives back.
pub(crate) fn version_arch_matches(glob: &str, version: &str, arch: &str) -> bool {
    version_matches(glob, version)
        || glob
            .strip_suffix(arch)
            .and_then(|g| g.strip_suffix('.'))
            .is_some_and(|g| version_matches(g, version))
}

/// Whether `text` matches the shell-style `glob` (`*`, `?`), e.g. package names in
/// `kiln projects info 'python3-*'`.
pub fn name_matches(glob: &str, text: &str) -> bool {
    matches(glob.as_bytes(), text.as_bytes())
}

/// Iterative wildcard matching with backtracking to the last `*` (linear in practice).
fn matches(glob: &[u8], text: &[u8]) -> bool {
    let (mut g, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match glob.get(g) {
            Some(b'*') => {
                star = Some((g, t));
                g += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                g += 1;
                t += 1;
            }
            _ => match star {
                Some((sg, st)) => {
                    g = sg + 1;
                    t = st + 1;
                    star = Some((sg, st + 1));
                }
                None => return false,
            },
        }
    }
    glob[g..].iter().all(|&c| c == b'*')
}

/// Edit distance between `a` and `b` (Levenshtein, with a swap of two neighbouring
/// characters counting as one edit) if it is at most `max`.
pub(crate) fn edit_distance(a: &str, b: &str, max: usize) -> Option<usize> {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len().abs_diff(b.len()) > max {
        return None;
    }
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for i in 1..=a.len() {
        cur[0] = i;
        let mut row_min = cur[0];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
            row_min = row_min.min(cur[j]);
        }
        if row_min > max {
            return None;
        }
        std::mem::swap(&mut prev2, &mut prev);
        std::mem::swap(&mut prev, &mut cur);
    }
    (prev[b.len()] <= max).then_some(prev[b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(version_matches("2.4.*", "2.4.57-2"));
        assert!(version_matches("2.4.*", "1:2.4.57-2"));
        assert!(version_matches("1:2.4.*", "1:2.4.57-2"));
        assert!(!version_matches("2.4.*", "2.40"));
        assert!(version_matches("*", "0.1"));
        assert!(version_matches("1.2-3", "1.2-3"));
        assert!(version_matches("1.2-3", "5:1.2-3"));
        assert!(!version_matches("1.2-3", "1.2-3+b1"));
        assert!(version_matches("1.?-*", "1.2-3+b1"));
        assert!(version_matches("*+deb12u*", "2.36-9+deb12u10"));
        // A frozen EVRA: the architecture suffix must be the package's.
        assert!(version_arch_matches("2.36-9.amd64", "2.36-9", "amd64"));
        assert!(version_arch_matches("1:2.4.57-2.all", "1:2.4.57-2", "all"));
        assert!(!version_arch_matches("2.36-9.amd64", "2.36-9", "arm64"));
        assert!(!version_arch_matches("2.36-9.amd64", "2.36-10", "amd64"));
        assert!(version_arch_matches("2.36-9", "2.36-9", "amd64"));
        assert!(!version_matches("", "1"));
    }

    #[test]
    fn distance() {
        assert_eq!(edit_distance("ngnix", "nginx", 2), Some(1));
        assert_eq!(edit_distance("nginx", "nginx", 2), Some(0));
        assert_eq!(edit_distance("postgres", "postgresql", 2), Some(2));
        assert_eq!(edit_distance("abc", "xyz", 2), None);
    }
}

#[cfg(test)]
mod name_tests {
    use super::name_matches;

    #[test]
    fn package_name_globs() {
        assert!(name_matches("python3-*", "python3-apt"));
        assert!(name_matches("bash", "bash"));
        assert!(!name_matches("bash", "bash-completion"));
        assert!(name_matches("lib?c6", "libxc6"));
        assert!(!name_matches("python3-*", "python3"));
        // Linear, not exponential, on pathological patterns.
        assert!(!name_matches(&"*a".repeat(30), &"a".repeat(29)));
    }
}
