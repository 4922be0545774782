"""URL validation: every form git could be tricked with is refused with a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from marlin.catalog.validation import InvalidRepositoryURL, normalize_url, validate_url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("--upload-pack=touch /tmp/x", "option"),
        ("-oProxyCommand=touch /tmp/x", "option"),
        ("-u", "option"),
        ("ext::sh -c touch% /tmp/pwned", "ext::"),
        ("fd::17", "fd::"),
        ("fd::17/foo", "fd::"),
        ("myhelper::https://github.com/a/b", "myhelper::"),
        ("::https://github.com/a/b", "remote-helper"),
        ("file:///etc", "local paths"),
        ("/etc", "local paths"),
        ("https://user:pw@github.com/owner/name", "credentials"),
        ("https://ghp_token@github.com/owner/name", "credentials"),
        ("ssh://git:secret@github.com/owner/name", "credentials"),
        ("git@host:-evil/x", "'-evil'"),
        ("https://github.com/-evil/x", "'-evil'"),
        ("ssh://-oProxyCommand=x/y", "host starts with '-'"),
        ("-oProxyCommand=x@host:a/b", "option"),
        ("ssh://-oProxyCommand@host/a/b", "user name starts with '-'"),
        ("http://github.com/owner/name", "http://"),
        ("git://github.com/owner/name", "git://"),
        ("ftp://example.com/repo", "'ftp://' scheme"),
        ("https://github.com/owner/name with space", "whitespace"),
        ("https://github.com/owner/name\n--upload-pack=x", "whitespace"),
        ("https://github.com/owner/na\x00me", "control"),
        ("https:///owner/name", "host is empty"),
        ("https://github.com/", "no repository path"),
        ("https://github.com/owner/name?x=1", "'?'"),
        ("https://github.com/../../etc", "'..'"),
        ("relative/path", "not a repository URL"),
        ("", "empty"),
        ("https://github.com/" + "a" * 600, "longer"),
    ],
)
def test_it_rejects_dangerous_and_malformed_urls_with_a_reason(url: str, reason: str) -> None:
    with pytest.raises(InvalidRepositoryURL) as excinfo:
        validate_url(url)
    assert reason in str(excinfo.value)


def test_it_says_where_to_put_credentials_instead() -> None:
    with pytest.raises(InvalidRepositoryURL, match="credential helper or an SSH key"):
        validate_url("https://user:token@github.com/owner/name.git")


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/Owner/Name",
        "https://github.com/owner/name.git",
        "https://github.com/owner/name/",
        "https://GitHub.com/owner/name.git/",
        "https://www.github.com/owner/name",
        "git@github.com:owner/name.git",
        "git@github.com:Owner/Name",
        "ssh://git@github.com/owner/name.git",
        "ssh://git@github.com:22/owner/name",
        "ssh://github.com/owner/name",
    ],
)
def test_it_normalises_the_forms_of_one_github_repository_to_one_key(url: str) -> None:
    assert normalize_url(url) == "github.com/owner/name"


def test_it_keeps_path_case_on_hosts_that_may_be_case_sensitive() -> None:
    assert normalize_url("https://Git.Example.com/Group/Proj.git") == "git.example.com/Group/Proj"
    assert normalize_url("https://git.example.com/group/proj") != normalize_url(
        "https://git.example.com/Group/Proj"
    )


def test_it_derives_name_and_host() -> None:
    parsed = validate_url("https://gitlab.example.com:8443/group/sub/proj.git")
    assert (parsed.host, parsed.name, parsed.is_local) == ("gitlab.example.com", "sub/proj", False)
    assert parsed.url == "https://gitlab.example.com:8443/group/sub/proj.git"
    scp = validate_url("deploy@git.example.org:team/tool.git")
    assert (scp.host, scp.name, scp.normalized) == (
        "git.example.org",
        "team/tool",
        "git.example.org/team/tool",
    )


def test_it_accepts_ipv6_ssh_hosts() -> None:
    assert validate_url("ssh://git@[::1]:2222/srv/repo.git").normalized == "[::1]/srv/repo"


def test_it_accepts_existing_absolute_directories_only_when_local_is_allowed(
    tmp_path: Path,
) -> None:
    repo = tmp_path / "team" / "project.git"
    repo.mkdir(parents=True)
    parsed = validate_url(str(repo), allow_local=True)
    assert parsed.is_local and parsed.url == str(repo.resolve())
    assert parsed.name == "team/project" and parsed.host == ""
    assert validate_url(f"file://{repo}", allow_local=True).normalized == parsed.normalized
    # The same path through a `..` detour resolves to the same key.
    assert (
        normalize_url(f"{tmp_path}/team/../team/project.git", allow_local=True) == parsed.normalized
    )
    with pytest.raises(InvalidRepositoryURL, match="not an existing directory"):
        validate_url(str(tmp_path / "missing"), allow_local=True)
    with pytest.raises(InvalidRepositoryURL, match="not an absolute path"):
        validate_url("file://relative/dir", allow_local=True)
    with pytest.raises(InvalidRepositoryURL, match="option"):
        validate_url("-/tmp", allow_local=True)
    with pytest.raises(InvalidRepositoryURL, match="local paths"):
        validate_url(str(repo))
