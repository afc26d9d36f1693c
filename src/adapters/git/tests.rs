use super::*;
use repo::base64;

fn cfg(repo: &str) -> GitConfig {
    GitConfig {
        repo: repo.to_owned(),
        git_ref: None,
        path: None,
        cache_dir: PathBuf::from("/tmp/unused"),
        token: None,
        ssh_key_file: None,
        timeout: Duration::from_secs(5),
    }
}

#[test]
fn wanted_ref_parsing() {
    assert_eq!(WantedRef::parse(None), Ok(WantedRef::RemoteHead));
    assert_eq!(WantedRef::parse(Some(" ")), Ok(WantedRef::RemoteHead));
    assert_eq!(WantedRef::parse(Some("HEAD")), Ok(WantedRef::RemoteHead));
    assert_eq!(
        WantedRef::parse(Some("release/1.2")),
        Ok(WantedRef::Short("release/1.2".to_owned()))
    );
    assert_eq!(
        WantedRef::parse(Some("refs/tags/v1")),
        Ok(WantedRef::Full("refs/tags/v1".to_owned()))
    );
    for bad in [
        "-oops", "main~1", "a..b", "x@{1}", "a b", "a:b", "x^{tree}", "a/", "x.lock",
    ] {
        assert!(WantedRef::parse(Some(bad)).is_err(), "{bad}");
    }
}

#[test]
fn path_normalization() {
    assert_eq!(normalize_path(None).as_deref(), Ok(""));
    assert_eq!(normalize_path(Some(".")).as_deref(), Ok(""));
    assert_eq!(normalize_path(Some("./a/b/")).as_deref(), Ok("a/b"));
    assert_eq!(normalize_path(Some("/a//./b")).as_deref(), Ok("a/b"));
    assert!(normalize_path(Some("a/../../etc")).is_err());
}

#[test]
fn token_goes_to_a_scoped_header_and_the_scrub_list() {
    let mut c = cfg("https://git.example.com/org/repo.git");
    c.token = Some("tok123".to_owned());
    let spec = RepoSpec::parse(&c.repo);
    let env = git_env(&c, &spec);
    let header = base64(b"x-access-token:tok123");
    assert!(env.iter().any(|(k, v)| k.starts_with("GIT_CONFIG_VALUE_")
        && *v == format!("Authorization: Basic {header}")));
    assert!(env.iter().any(|(k, v)| k.starts_with("GIT_CONFIG_KEY_")
        && v == "http.https://git.example.com/.extraHeader"));
    assert!(env.iter().all(|(_, v)| !v.contains("tok123")));
    let s = secrets(&c, &spec);
    assert!(s.contains(&"tok123".to_owned()) && s.contains(&header));
}

#[test]
fn no_token_header_for_ssh_and_key_is_quoted() {
    let mut c = cfg("git@github.com:org/repo.git");
    c.token = Some("tok".to_owned());
    c.ssh_key_file = Some(PathBuf::from("/keys/it's key"));
    let env = git_env(&c, &RepoSpec::parse(&c.repo));
    assert!(env.iter().all(|(k, _)| !k.starts_with("GIT_CONFIG")));
    let ssh = env
        .iter()
        .find(|(k, _)| k == "GIT_SSH_COMMAND")
        .map(|(_, v)| v.as_str());
    assert_eq!(
        ssh,
        Some(
            r"ssh -i '/keys/it'\''s key' -o IdentitiesOnly=yes -o StrictHostKeyChecking=accept-new -o BatchMode=yes"
        )
    );
}

#[test]
fn debug_output_hides_the_token() {
    let mut c = cfg("https://u:pw@h/r.git");
    c.token = Some("tok123".to_owned());
    let s = format!("{:?}", GitSource::new(c));
    assert!(!s.contains("tok123") && !s.contains("pw"), "{s}");
}

#[test]
fn error_messages_name_repo_and_file() {
    let e = SourceError::FileTooLarge {
        repo: Some("https://h/r.git".to_owned()),
        path: "m/web.yaml".to_owned(),
        size: 2,
        limit: 1,
    };
    assert_eq!(
        e.to_string(),
        "https://h/r.git: m/web.yaml: file is 2 bytes, over the limit of 1 bytes"
    );
    let e = SourceError::NotUtf8 {
        repo: None,
        path: "m/x.yml".to_owned(),
    };
    assert_eq!(e.to_string(), "m/x.yml: not valid UTF-8");
}

#[test]
fn the_default_branch_is_read_from_the_symref() {
    let out = "ref: refs/heads/trunk\tHEAD\n0123456789abcdef0123456789abcdef01234567\tHEAD\n";
    assert_eq!(symref_branch(out).as_deref(), Some("trunk"));
    assert_eq!(symref_branch("0123\tHEAD\n"), None);
    assert_eq!(symref_branch(""), None);
}

#[test]
fn commit_info_parses_time_and_subject() {
    let c = CommitInfo::parse("1700000000\0web: nginx 1.27 <b>\n").unwrap();
    assert_eq!(c.subject, "web: nginx 1.27 <b>");
    assert_eq!(
        c.time,
        std::time::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    );
    assert_eq!(CommitInfo::parse("garbage"), None);
    assert_eq!(CommitInfo::parse("x\0subject"), None);
}
