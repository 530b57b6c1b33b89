//! multipathd's command language: the tokenizer, keywords matched by unique prefix, the
//! handler table, the help text, and the replies each failure gets
//! (`multipath-facts.md` §2; `multipathd/cli.c`, `uxlsnr.c` of 0.9.4 and 0.9.8; for the
//! dom0's 0.4.9-xs `multipathd/cli.c`, `cli_handlers.c`, `main.c` of the RHEL 7 tree).

use super::World;
use super::daemon::{Checker, Daemon, Failure, ReplyStyle};
use super::print::{Printer, wildcards};
use std::collections::BTreeSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keyword {
    List,
    Add,
    Del,
    Switch,
    Suspend,
    Resume,
    Reinstate,
    Fail,
    Resize,
    Reset,
    Reload,
    ForceQ,
    DisableQ,
    RestoreQ,
    Paths,
    Maps,
    Path,
    Map,
    Group,
    Reconfigure,
    Daemon,
    Status,
    Stats,
    Topology,
    Config,
    Blacklist,
    Devices,
    Raw,
    Wildcards,
    Quit,
    Shutdown,
    GetPrStatus,
    SetPrStatus,
    UnsetPrStatus,
    Format,
    Json,
    GetPrKey,
    SetPrKey,
    UnsetPrKey,
    KeyParam,
    Local,
    SetMarginal,
    UnsetMarginal,
    All,
}

/// Keywords in multipathd's table order (aliases share a code; help prints them `a|b`).
const KEYWORDS: &[(&str, Keyword, bool)] = &[
    ("list", Keyword::List, false),
    ("show", Keyword::List, false),
    ("add", Keyword::Add, false),
    ("remove", Keyword::Del, false),
    ("del", Keyword::Del, false),
    ("switch", Keyword::Switch, false),
    ("switchgroup", Keyword::Switch, false),
    ("suspend", Keyword::Suspend, false),
    ("resume", Keyword::Resume, false),
    ("reinstate", Keyword::Reinstate, false),
    ("fail", Keyword::Fail, false),
    ("resize", Keyword::Resize, false),
    ("reset", Keyword::Reset, false),
    ("reload", Keyword::Reload, false),
    ("forcequeueing", Keyword::ForceQ, false),
    ("disablequeueing", Keyword::DisableQ, false),
    ("restorequeueing", Keyword::RestoreQ, false),
    ("paths", Keyword::Paths, false),
    ("maps", Keyword::Maps, false),
    ("multipaths", Keyword::Maps, false),
    ("path", Keyword::Path, true),
    ("map", Keyword::Map, true),
    ("multipath", Keyword::Map, true),
    ("group", Keyword::Group, true),
    ("reconfigure", Keyword::Reconfigure, false),
    ("daemon", Keyword::Daemon, false),
    ("status", Keyword::Status, false),
    ("stats", Keyword::Stats, false),
    ("topology", Keyword::Topology, false),
    ("config", Keyword::Config, false),
    ("blacklist", Keyword::Blacklist, false),
    ("devices", Keyword::Devices, false),
    ("raw", Keyword::Raw, false),
    ("wildcards", Keyword::Wildcards, false),
    ("quit", Keyword::Quit, false),
    ("exit", Keyword::Quit, false),
    ("shutdown", Keyword::Shutdown, false),
    ("getprstatus", Keyword::GetPrStatus, false),
    ("setprstatus", Keyword::SetPrStatus, false),
    ("unsetprstatus", Keyword::UnsetPrStatus, false),
    ("format", Keyword::Format, true),
    ("json", Keyword::Json, false),
    ("getprkey", Keyword::GetPrKey, false),
    ("setprkey", Keyword::SetPrKey, false),
    ("unsetprkey", Keyword::UnsetPrKey, false),
    ("key", Keyword::KeyParam, true),
    ("local", Keyword::Local, false),
    ("setmarginal", Keyword::SetMarginal, false),
    ("unsetmarginal", Keyword::UnsetMarginal, false),
    ("all", Keyword::All, false),
];

/// What a command does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handler {
    ListPaths,
    ListPathsFmt,
    ListPathsRaw,
    ListPath,
    ListMaps,
    ListStatus,
    ListDaemon,
    ListMapsStatus,
    ListMapsStats,
    ListMapsFmt,
    ListMapsRaw,
    ListTopology,
    ListMapsJson,
    ListMapTopology,
    ListMapFmt,
    ListMapJson,
    ListWildcards,
    ResetStats,
    /// 0.4.9's `reset map X stats`: that map only.
    ResetMapStats,
    AddPath,
    DelPath,
    AddMap,
    DelMap,
    DelMaps,
    SwitchGroup,
    Reconfigure,
    Suspend,
    Resume,
    ResizeMap,
    ReloadMap,
    ResetMap,
    Reinstate,
    FailPath,
    Quit,
    Shutdown,
    /// In multipathd, but not simulated: answered `fail`, and said on stderr.
    NotSimulated,
}

impl Handler {
    /// Handlers that write a reply of their own, even an empty one.
    fn lists(self) -> bool {
        matches!(
            self,
            Self::ListPaths
                | Self::ListPathsFmt
                | Self::ListPathsRaw
                | Self::ListPath
                | Self::ListMaps
                | Self::ListStatus
                | Self::ListDaemon
                | Self::ListMapsStatus
                | Self::ListMapsStats
                | Self::ListMapsFmt
                | Self::ListMapsRaw
                | Self::ListTopology
                | Self::ListMapsJson
                | Self::ListMapTopology
                | Self::ListMapFmt
                | Self::ListMapJson
                | Self::ListWildcards
        )
    }

    /// Handlers multipathd runs without its big lock (they never time out).
    fn unlocked(self) -> bool {
        matches!(
            self,
            Self::ListDaemon | Self::Reconfigure | Self::Quit | Self::Shutdown
        )
    }
}

use Keyword as K;

/// The handler table, in `callbacks.c` order (the help text lists them so).
const HANDLERS: &[(&[Keyword], Handler)] = &[
    (&[K::List, K::Paths], Handler::ListPaths),
    (&[K::List, K::Paths, K::Format], Handler::ListPathsFmt),
    (
        &[K::List, K::Paths, K::Raw, K::Format],
        Handler::ListPathsRaw,
    ),
    (&[K::List, K::Path], Handler::ListPath),
    (&[K::List, K::Maps], Handler::ListMaps),
    (&[K::List, K::Status], Handler::ListStatus),
    (&[K::List, K::Daemon], Handler::ListDaemon),
    (&[K::List, K::Maps, K::Status], Handler::ListMapsStatus),
    (&[K::List, K::Maps, K::Stats], Handler::ListMapsStats),
    (&[K::List, K::Maps, K::Format], Handler::ListMapsFmt),
    (&[K::List, K::Maps, K::Raw, K::Format], Handler::ListMapsRaw),
    (&[K::List, K::Maps, K::Topology], Handler::ListTopology),
    (&[K::List, K::Topology], Handler::ListTopology),
    (&[K::List, K::Maps, K::Json], Handler::ListMapsJson),
    (&[K::List, K::Map, K::Topology], Handler::ListMapTopology),
    (&[K::List, K::Map, K::Format], Handler::ListMapFmt),
    (&[K::List, K::Map, K::Raw, K::Format], Handler::ListMapFmt),
    (&[K::List, K::Map, K::Json], Handler::ListMapJson),
    (&[K::List, K::Config, K::Local], Handler::NotSimulated),
    (&[K::List, K::Config], Handler::NotSimulated),
    (&[K::List, K::Blacklist], Handler::NotSimulated),
    (&[K::List, K::Devices], Handler::NotSimulated),
    (&[K::List, K::Wildcards], Handler::ListWildcards),
    (&[K::Reset, K::Maps, K::Stats], Handler::ResetStats),
    (&[K::Reset, K::Map, K::Stats], Handler::ResetStats),
    (&[K::Add, K::Path], Handler::AddPath),
    (&[K::Del, K::Path], Handler::DelPath),
    (&[K::Add, K::Map], Handler::AddMap),
    (&[K::Del, K::Map], Handler::DelMap),
    (&[K::Del, K::Maps], Handler::DelMaps),
    (&[K::Switch, K::Map, K::Group], Handler::SwitchGroup),
    (&[K::Reconfigure], Handler::Reconfigure),
    (&[K::Reconfigure, K::All], Handler::Reconfigure),
    (&[K::Suspend, K::Map], Handler::Suspend),
    (&[K::Resume, K::Map], Handler::Resume),
    (&[K::Resize, K::Map], Handler::ResizeMap),
    (&[K::Reload, K::Map], Handler::ReloadMap),
    (&[K::Reset, K::Map], Handler::ResetMap),
    (&[K::Reinstate, K::Path], Handler::Reinstate),
    (&[K::Fail, K::Path], Handler::FailPath),
    (&[K::DisableQ, K::Map], Handler::NotSimulated),
    (&[K::RestoreQ, K::Map], Handler::NotSimulated),
    (&[K::DisableQ, K::Maps], Handler::NotSimulated),
    (&[K::RestoreQ, K::Maps], Handler::NotSimulated),
    (&[K::Quit], Handler::Quit),
    (&[K::Shutdown], Handler::Shutdown),
    (&[K::GetPrStatus, K::Map], Handler::NotSimulated),
    (&[K::SetPrStatus, K::Map], Handler::NotSimulated),
    (&[K::UnsetPrStatus, K::Map], Handler::NotSimulated),
    (&[K::ForceQ, K::Daemon], Handler::NotSimulated),
    (&[K::RestoreQ, K::Daemon], Handler::NotSimulated),
    (&[K::GetPrKey, K::Map], Handler::NotSimulated),
    (&[K::SetPrKey, K::Map, K::KeyParam], Handler::NotSimulated),
    (&[K::UnsetPrKey, K::Map], Handler::NotSimulated),
    (&[K::SetMarginal, K::Path], Handler::NotSimulated),
    (&[K::UnsetMarginal, K::Path], Handler::NotSimulated),
    (&[K::UnsetMarginal, K::Map], Handler::NotSimulated),
];

/// 0.4.9's keywords (`load_keys`): 0.9's up to `key`, without `local`, `setmarginal`,
/// `unsetmarginal` and `all`.
const KEYWORDS_0_4_9: &[(&str, Keyword, bool)] = KEYWORDS.split_at(46).0;

/// 0.4.9's handler table in `cli_init` order (the help text lists them so). Every entry has
/// a callback in `main.c`; `show map X format`, `show path X` and `del maps` do not exist.
const HANDLERS_0_4_9: &[(&[Keyword], Handler)] = &[
    (&[K::List, K::Paths], Handler::ListPaths),
    (&[K::List, K::Paths, K::Format], Handler::ListPathsFmt),
    (
        &[K::List, K::Paths, K::Raw, K::Format],
        Handler::ListPathsRaw,
    ),
    (&[K::List, K::Status], Handler::ListStatus),
    (&[K::List, K::Daemon], Handler::ListDaemon),
    (&[K::List, K::Maps], Handler::ListMaps),
    (&[K::List, K::Maps, K::Status], Handler::ListMapsStatus),
    (&[K::List, K::Maps, K::Stats], Handler::ListMapsStats),
    (&[K::List, K::Maps, K::Format], Handler::ListMapsFmt),
    (&[K::List, K::Maps, K::Raw, K::Format], Handler::ListMapsRaw),
    (&[K::List, K::Maps, K::Topology], Handler::ListTopology),
    (&[K::List, K::Maps, K::Json], Handler::ListMapsJson),
    (&[K::List, K::Topology], Handler::ListTopology),
    (&[K::List, K::Map, K::Topology], Handler::ListMapTopology),
    (&[K::List, K::Map, K::Json], Handler::ListMapJson),
    (&[K::List, K::Config], Handler::NotSimulated),
    (&[K::List, K::Blacklist], Handler::NotSimulated),
    (&[K::List, K::Devices], Handler::NotSimulated),
    (&[K::List, K::Wildcards], Handler::ListWildcards),
    (&[K::Reset, K::Maps, K::Stats], Handler::ResetStats),
    (&[K::Reset, K::Map, K::Stats], Handler::ResetMapStats),
    (&[K::Add, K::Path], Handler::AddPath),
    (&[K::Del, K::Path], Handler::DelPath),
    (&[K::Add, K::Map], Handler::AddMap),
    (&[K::Del, K::Map], Handler::DelMap),
    (&[K::Switch, K::Map, K::Group], Handler::SwitchGroup),
    (&[K::Reconfigure], Handler::Reconfigure),
    (&[K::Suspend, K::Map], Handler::Suspend),
    (&[K::Resume, K::Map], Handler::Resume),
    (&[K::Resize, K::Map], Handler::ResizeMap),
    (&[K::Reset, K::Map], Handler::ResetMap),
    (&[K::Reload, K::Map], Handler::ReloadMap),
    (&[K::DisableQ, K::Map], Handler::NotSimulated),
    (&[K::RestoreQ, K::Map], Handler::NotSimulated),
    (&[K::DisableQ, K::Maps], Handler::NotSimulated),
    (&[K::RestoreQ, K::Maps], Handler::NotSimulated),
    (&[K::Reinstate, K::Path], Handler::Reinstate),
    (&[K::Fail, K::Path], Handler::FailPath),
    (&[K::Quit], Handler::Quit),
    (&[K::Shutdown], Handler::Shutdown),
    (&[K::GetPrStatus, K::Map], Handler::NotSimulated),
    (&[K::SetPrStatus, K::Map], Handler::NotSimulated),
    (&[K::UnsetPrStatus, K::Map], Handler::NotSimulated),
    (&[K::GetPrKey, K::Map], Handler::NotSimulated),
    (&[K::SetPrKey, K::Map, K::KeyParam], Handler::NotSimulated),
    (&[K::UnsetPrKey, K::Map], Handler::NotSimulated),
    (&[K::ForceQ, K::Daemon], Handler::NotSimulated),
    (&[K::RestoreQ, K::Daemon], Handler::NotSimulated),
];

/// Why a command got no handler (`get_cmdvec`'s codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// Nothing to run (ENOMEM in multipathd, for historical reasons).
    Empty,
    /// The last word is unknown (ESRCH).
    NotFound,
    /// An unknown word before the last (ENOENT): a bare `fail`.
    Unknown,
    /// A missing parameter, or known words without a handler (EINVAL).
    MissingArgument,
}

/// A parsed command.
struct Parsed {
    handler: Handler,
    verb: Keyword,
    params: Vec<(Keyword, String)>,
}

impl Parsed {
    fn param(&self, key: Keyword) -> &str {
        self.params
            .iter()
            .find(|(k, _)| *k == key)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// Splits a command as `alloc_strvec` does: whitespace separates; `"…"` is one word with
/// `""` for a quote; outside quotes `!` or `#` ends the command and braces are words.
fn tokenize(cmd: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = cmd.chars().peekable();
    loop {
        while chars
            .peek()
            .is_some_and(|c| c.is_whitespace() || !c.is_ascii())
        {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        match c {
            '!' | '#' => break,
            '{' | '}' => {
                words.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut word = String::new();
                while let Some(c) = chars.next() {
                    if c == '"' {
                        if chars.peek() == Some(&'"') {
                            chars.next();
                            word.push('"');
                        } else {
                            break;
                        }
                    } else {
                        word.push(c);
                    }
                }
                words.push(word);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || !c.is_ascii() || "{}\"!#".contains(c) {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                words.push(word);
            }
        }
    }
    words
}

/// A keyword by unique prefix; an exact match wins; ambiguity is no match.
fn find_key(word: &str) -> Option<(Keyword, bool)> {
    find_key_in(KEYWORDS, word)
}

fn find_key_in(table: &[(&str, Keyword, bool)], word: &str) -> Option<(Keyword, bool)> {
    let mut found = None;
    for (text, key, param) in table {
        if !text.starts_with(word) {
            continue;
        }
        if text.len() == word.len() {
            return Some((*key, *param));
        }
        match found {
            None => found = Some((*key, *param)),
            Some(_) => return None,
        }
    }
    found
}

fn parse(cmd: &str) -> Result<Parsed, Refusal> {
    let words = tokenize(cmd);
    if words.is_empty() {
        return Err(Refusal::Empty);
    }
    let mut keys = Vec::new();
    let mut params = Vec::new();
    let mut wants: Option<Keyword> = None;
    for (i, word) in words.iter().enumerate() {
        if let Some(key) = wants.take() {
            params.push((key, word.clone()));
            continue;
        }
        match find_key(word) {
            Some((key, param)) => {
                keys.push(key);
                if param {
                    wants = Some(key);
                }
            }
            None if i + 1 == words.len() => return Err(Refusal::NotFound),
            None => return Err(Refusal::Unknown),
        }
    }
    if wants.is_some() {
        return Err(Refusal::MissingArgument);
    }
    let handler = HANDLERS
        .iter()
        .find(|(pattern, _)| *pattern == keys.as_slice())
        .map(|(_, h)| *h)
        .ok_or(Refusal::MissingArgument)?;
    Ok(Parsed {
        handler,
        verb: keys[0],
        params,
    })
}

/// Splits a command as 0.4.9's `alloc_strvec` does: whitespace separates, also inside
/// quotes; a `"` is a word of its own (`get_cmdvec` skips it) and toggles quoting, inside
/// which a word runs to the next `"` with its spaces; outside quotes braces are words and a
/// `!` or `#` where a word would start ends the command. There is no `""` escape.
fn tokenize_0_4_9(cmd: &str) -> Vec<String> {
    let bytes = cmd.as_bytes();
    // C's isspace (vertical tab included), and every byte that is not ASCII.
    let space = |b: u8| matches!(b, b' ' | b'\t'..=b'\r') || !b.is_ascii();
    let mut at = 0;
    let mut words = Vec::new();
    while at < bytes.len() && space(bytes[at]) {
        at += 1;
    }
    if at == bytes.len() || bytes[at] == b'!' || bytes[at] == b'#' {
        return words;
    }
    let mut in_string = false;
    loop {
        let start = at;
        if bytes[at] == b'"' {
            at += 1;
            in_string = !in_string;
            words.push("\"".to_string());
        } else if !in_string && (bytes[at] == b'{' || bytes[at] == b'}') {
            at += 1;
            words.push(cmd[start..at].to_string());
        } else {
            while at < bytes.len()
                && bytes[at] != b'"'
                && (in_string || !(space(bytes[at]) || b"!#{}".contains(&bytes[at])))
            {
                at += 1;
            }
            words.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
        }
        while at < bytes.len() && space(bytes[at]) {
            at += 1;
        }
        if at == bytes.len() || bytes[at] == b'!' || bytes[at] == b'#' {
            return words;
        }
    }
}

/// 0.4.9's `get_cmdvec` and `find_handler(fingerprint(…))`: the command is the set of its
/// keywords (any order; a keyword twice matches nothing). Every refusal is the same to the
/// client: the help text.
fn parse_0_4_9(cmd: &str) -> Option<Parsed> {
    let mut keys: Vec<Keyword> = Vec::new();
    let mut params = Vec::new();
    let mut wants: Option<Keyword> = None;
    for word in tokenize_0_4_9(cmd) {
        if word.starts_with('"') {
            continue;
        }
        if let Some(key) = wants.take() {
            params.push((key, word));
            continue;
        }
        let (key, param) = find_key_in(KEYWORDS_0_4_9, &word)?;
        if keys.contains(&key) {
            return None;
        }
        keys.push(key);
        if param {
            wants = Some(key);
        }
    }
    if wants.is_some() || keys.is_empty() {
        return None;
    }
    let handler = HANDLERS_0_4_9
        .iter()
        .find(|(pattern, _)| {
            pattern.len() == keys.len() && pattern.iter().all(|k| keys.contains(k))
        })
        .map(|(_, h)| *h)?;
    Some(Parsed {
        handler,
        verb: keys[0],
        params,
    })
}

/// 0.4.9's help text (`do_genhelp`): per handler, its keywords in keyword-table order (not
/// the order of the command), each with its aliases and parameter.
fn help_0_4_9() -> String {
    let mut out = String::from(ReplyStyle::V0_4_9Xs.version_line());
    out.push_str("CLI commands reference:\n");
    for (pattern, _) in HANDLERS_0_4_9 {
        let mut left: Vec<Keyword> = pattern.to_vec();
        for (text, key, param) in KEYWORDS_0_4_9 {
            let Some(at) = left.iter().position(|k| k == key) else {
                continue;
            };
            left.remove(at);
            out.push(' ');
            out.push_str(text);
            for (alias, _, _) in KEYWORDS_0_4_9
                .iter()
                .filter(|(a, k, _)| k == key && a != text)
            {
                out.push('|');
                out.push_str(alias);
            }
            if *param {
                out.push_str(" $");
                out.push_str(text);
            }
        }
        out.push('\n');
    }
    out
}

/// What 0.4.9-xs answers (`uxsock_trigger`): a non-root peer may only send what starts
/// with `list` or `show` (checked on the raw text, before parsing), and is told so without a
/// newline; a command it cannot parse or run gets the help text; a handler's failure is a
/// bare `fail`; an empty reply is `ok`. The daemon's lock blocks instead of timing out, so
/// there is no `timeout` reply.
fn answer_0_4_9(world: &mut World, cmd: &str, root: bool) -> Reply {
    if !root && !cmd.starts_with("list") && !cmd.starts_with("show") {
        return Reply::text("permission deny: need to be root");
    }
    let Some(parsed) = parse_0_4_9(cmd) else {
        return Reply::text(help_0_4_9());
    };
    let World { fabric, daemon, .. } = world;
    daemon.sync(fabric);
    let result = run(fabric, daemon, &parsed);
    daemon.sync(fabric);
    match result {
        // A listing with nothing to list still sets a reply: an empty string.
        Ok(text) if text.is_empty() && !parsed.handler.lists() => Reply::text("ok\n"),
        Ok(text) => Reply::text(text),
        Err(_) => Reply::text("fail\n"),
    }
    .shutting_down(parsed.handler == Handler::Shutdown)
}

/// The help text: the version, then every handler's keywords with aliases and parameters.
fn help(style: ReplyStyle) -> String {
    let mut out = String::from(style.version_line());
    out.push_str("CLI commands reference:\n");
    for (pattern, _) in HANDLERS {
        for key in *pattern {
            let mut names = KEYWORDS.iter().filter(|(_, k, _)| k == key);
            if let Some((first, _, param)) = names.next() {
                out.push(' ');
                out.push_str(first);
                for (alias, _, _) in names {
                    out.push('|');
                    out.push_str(alias);
                }
                if *param {
                    out.push_str(" $");
                    out.push_str(first);
                }
            }
        }
        out.push('\n');
    }
    out
}

/// The reply to a failure, as the given version words it.
fn failure_reply(style: ReplyStyle, failure: Failure) -> String {
    match (style, failure) {
        (ReplyStyle::V0_9_8, Failure::Busy) => "fail\nmap or partition in use\n".into(),
        (ReplyStyle::V0_9_8, Failure::NoDevice) => "fail\ndevice not found\n".into(),
        _ => "fail\n".into(),
    }
}

fn prefix(style: ReplyStyle) -> &'static str {
    match style {
        ReplyStyle::V0_9_4 | ReplyStyle::V0_4_9Xs => "",
        ReplyStyle::V0_9_8 => "fail\n",
    }
}

/// What the daemon answers one command; `root` is the peer's privilege.
pub(super) fn answer(world: &mut World, cmd: &str, root: bool, busy: &mut u32) -> Reply {
    let style = world.daemon.config.style;
    if style.is_0_4_9() {
        return answer_0_4_9(world, cmd, root);
    }
    let parsed = match parse(cmd) {
        Ok(parsed) => parsed,
        Err(refusal) => {
            let text = match refusal {
                Refusal::Unknown => return Reply::text("fail\n"),
                Refusal::Empty => format!("{cmd}: Not enough memory\n"),
                Refusal::NotFound => format!("{cmd}: not found\n"),
                Refusal::MissingArgument => format!("{cmd}: Missing argument\n"),
            };
            return Reply::text(format!("{}{text}{}", prefix(style), help(style)));
        }
    };
    if !root && parsed.verb != Keyword::List {
        return Reply::text(format!(
            "{}permission deny: need to be root\n",
            prefix(style)
        ));
    }
    if !parsed.handler.unlocked() && *busy > 0 {
        *busy -= 1;
        return Reply::text(format!("{}timeout\n", prefix(style)));
    }
    let World { fabric, daemon, .. } = world;
    daemon.sync(fabric);
    let result = run(fabric, daemon, &parsed);
    daemon.sync(fabric);
    match result {
        Ok(text) if text.is_empty() => Reply::text("ok\n"),
        Ok(text) => Reply::text(text),
        Err(failure) => Reply::text(failure_reply(style, failure)),
    }
    .shutting_down(parsed.handler == Handler::Shutdown)
}

/// A reply, and whether the daemon stops after sending it.
pub(super) struct Reply {
    pub text: String,
    pub shutdown: bool,
}

impl Reply {
    fn text(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            shutdown: false,
        }
    }

    fn shutting_down(mut self, yes: bool) -> Self {
        self.shutdown = yes;
        self
    }
}

const PATH_CHECKER: &str = "%i %d %D %p %t %T %o %C";
const MAP_NAMES: &str = "%n %d %w";
const MAP_STATUS: &str = "%n %F %Q %N %t %r";
const MAP_STATS: &str = "%n %0 %1 %2 %3 %4";

fn run(
    fabric: &crate::fabric::Fabric,
    daemon: &mut Daemon,
    cmd: &Parsed,
) -> Result<String, Failure> {
    let map_param = || {
        cmd.param(Keyword::Map)
            .strip_prefix("/dev/")
            .unwrap_or(cmd.param(Keyword::Map))
    };
    let path_param = || {
        cmd.param(Keyword::Path)
            .strip_prefix("/dev/")
            .unwrap_or(cmd.param(Keyword::Path))
    };
    let find_map = |daemon: &Daemon| daemon.find_map(map_param()).ok_or(Failure::Generic);
    let print = |daemon: &Daemon, f: &dyn Fn(&Printer) -> String| f(&Printer::new(fabric, daemon));
    if daemon.config.style.is_0_4_9()
        && let Some(result) = run_0_4_9(fabric, daemon, cmd, map_param(), path_param())
    {
        return result;
    }
    Ok(match cmd.handler {
        Handler::ListPaths => print(daemon, &|p| p.paths_table(PATH_CHECKER, true)),
        Handler::ListPathsFmt => {
            print(daemon, &|p| p.paths_table(cmd.param(Keyword::Format), true))
        }
        Handler::ListPathsRaw => print(daemon, &|p| {
            p.paths_table(cmd.param(Keyword::Format), false)
        }),
        Handler::ListPath => {
            let id = daemon
                .find_path(fabric, path_param())
                .ok_or(Failure::Generic)?;
            print(daemon, &|p| {
                let mut state = String::new();
                p.path_field(&mut state, id, 'o');
                state.push('\n');
                state
            })
        }
        Handler::ListMaps => print(daemon, &|p| p.maps_table(MAP_NAMES, true)),
        Handler::ListStatus => print(daemon, &|p| p.status()),
        Handler::ListDaemon => format!("pid {} idle\n", daemon.config.pid),
        Handler::ListMapsStatus => print(daemon, &|p| p.maps_table(MAP_STATUS, true)),
        Handler::ListMapsStats => print(daemon, &|p| p.maps_table(MAP_STATS, true)),
        Handler::ListMapsFmt => print(daemon, &|p| p.maps_table(cmd.param(Keyword::Format), true)),
        Handler::ListMapsRaw => print(daemon, &|p| p.maps_table(cmd.param(Keyword::Format), false)),
        Handler::ListTopology => print(daemon, &|p| p.topology(0..daemon.maps.len())),
        Handler::ListMapsJson => print(daemon, &|p| p.maps_json()),
        Handler::ListMapTopology => {
            let i = find_map(daemon)?;
            print(daemon, &|p| p.topology([i]))
        }
        Handler::ListMapFmt => {
            let i = find_map(daemon)?;
            print(daemon, &|p| p.map_line(i, cmd.param(Keyword::Format)))
        }
        Handler::ListMapJson => {
            let i = find_map(daemon)?;
            print(daemon, &|p| p.map_json(i))
        }
        Handler::ListWildcards => wildcards(daemon.config.style.is_0_4_9()),
        Handler::ResetStats => {
            for map in &mut daemon.maps {
                map.path_faults = 0;
                map.switch_grp = 0;
                map.map_loads = 0;
            }
            String::new()
        }
        Handler::ResetMapStats => {
            let i = find_map(daemon)?;
            let map = &mut daemon.maps[i];
            map.path_faults = 0;
            map.switch_grp = 0;
            map.map_loads = 0;
            String::new()
        }
        Handler::AddPath => {
            let name = path_param();
            if daemon.devnode_blacklisted(name) {
                return Ok("blacklisted\n".into());
            }
            let id = fabric
                .device_named(name)
                .map(|d| d.id)
                .ok_or(Failure::Generic)?;
            let mut reload = BTreeSet::new();
            daemon.add_path(fabric, id, &mut reload);
            for wwid in reload {
                daemon.reload(fabric, &wwid);
            }
            daemon.touch();
            String::new()
        }
        Handler::DelPath => {
            let id = daemon
                .find_path(fabric, path_param())
                .ok_or(Failure::Generic)?;
            let mut reload = BTreeSet::new();
            daemon.drop_path(fabric, id, &mut reload);
            for wwid in reload {
                daemon.reload(fabric, &wwid);
            }
            daemon.touch();
            String::new()
        }
        Handler::AddMap => {
            let name = map_param();
            if daemon.config.blacklist_wwids.contains(name) {
                // Written by the handler, so sent as it is: no `fail` line.
                return Ok("blacklisted\n".into());
            }
            if daemon.find_map(name).is_none() && !daemon.create_map(fabric, name) {
                return Err(Failure::Generic);
            }
            daemon.touch();
            // multipathd looks the new map up by the name it was given: with
            // user_friendly_names that is not the map's name, and it answers `fail`.
            daemon.find_map(name).ok_or(Failure::Generic)?;
            String::new()
        }
        Handler::DelMap => {
            let style = daemon.config.style;
            let i = daemon.find_map(map_param()).ok_or(match style {
                ReplyStyle::V0_9_4 | ReplyStyle::V0_4_9Xs => Failure::Generic,
                ReplyStyle::V0_9_8 => Failure::NoDevice,
            })?;
            daemon.flush_map(i)?;
            daemon.touch();
            String::new()
        }
        Handler::DelMaps => {
            for i in (0..daemon.maps.len()).rev() {
                daemon.flush_map(i)?;
            }
            daemon.touch();
            String::new()
        }
        Handler::SwitchGroup => {
            let i = find_map(daemon)?;
            let group: usize = cmd
                .param(Keyword::Group)
                .parse()
                .map_err(|_| Failure::Generic)?;
            if group == 0 || group > daemon.maps[i].layout.len() {
                return Err(Failure::Generic);
            }
            daemon.maps[i].current = group - 1;
            daemon.maps[i].switch_grp += 1;
            String::new()
        }
        Handler::Reconfigure => {
            daemon.reconfigure(fabric);
            String::new()
        }
        Handler::Suspend | Handler::Resume | Handler::ResizeMap | Handler::ResetMap => {
            find_map(daemon)?;
            String::new()
        }
        Handler::ReloadMap => {
            let i = find_map(daemon)?;
            let wwid = daemon.maps[i].wwid.clone();
            daemon.reload(fabric, &wwid);
            String::new()
        }
        Handler::Reinstate | Handler::FailPath => {
            let id = daemon
                .find_path(fabric, path_param())
                .ok_or(Failure::Generic)?;
            daemon.map_of(fabric, id).ok_or(Failure::Generic)?;
            let state = daemon.paths.get_mut(&id).ok_or(Failure::Generic)?;
            // multipathd fails the path in the kernel and turns its checker off; on the
            // kernel's PATH_FAILED event it marks the path down (update_multipath), so the
            // path shows `failed faulty` until it is reinstated.
            state.operator_failed = (cmd.handler == Handler::FailPath).then_some(Checker::Down);
            daemon.touch();
            String::new()
        }
        Handler::Quit | Handler::Shutdown => String::new(),
        Handler::NotSimulated => {
            eprintln!(
                "multipathd simulator: {:?} is not simulated; answering fail",
                cmd.handler
            );
            return Err(Failure::Generic);
        }
    })
}

/// The handlers whose 0.4.9 behaviour differs from 0.9's; `None` for the others.
fn run_0_4_9(
    fabric: &crate::fabric::Fabric,
    daemon: &mut Daemon,
    cmd: &Parsed,
    map: &str,
    path: &str,
) -> Option<Result<String, Failure>> {
    // Handlers that call find_mp_by_alias (suspend, resume, reset) or address the kernel by
    // name (switch group, add/remove map) know a map by its name alone, never as `dm-N`.
    let by_name = |daemon: &Daemon| daemon.find_alias(map).ok_or(Failure::Generic);
    Some(match cmd.handler {
        Handler::ListDaemon => Ok(format!("pid {} running\n", daemon.config.pid)),
        Handler::AddPath => add_path_0_4_9(fabric, daemon, path),
        Handler::DelPath => {
            // find_path_by_dev: the kernel name only.
            let Some(id) = daemon
                .find_path(fabric, path)
                .filter(|id| fabric.device(*id).name == path)
            else {
                return Some(Err(Failure::Generic));
            };
            let mut reload = BTreeSet::new();
            daemon.drop_path(fabric, id, &mut reload);
            for wwid in reload {
                daemon.reload(fabric, &wwid);
            }
            daemon.touch();
            Ok(String::new())
        }
        Handler::AddMap => {
            if daemon.config.blacklist_wwids.contains(map) {
                return Some(Ok("blacklisted\n".into()));
            }
            // cli_add_map adopts a table the kernel has (ev_add_map) and builds nothing;
            // for a name with no table it logs "not a device mapper table" or "mapname not
            // found" and answers ok all the same.
            if map.len() < DM_NAME_LEN && daemon.find_alias(map).is_none() {
                std::thread::sleep(daemon.config.missing_map_delay);
            }
            Ok(String::new())
        }
        Handler::DelMap => {
            if map.len() >= DM_NAME_LEN {
                return Some(Err(Failure::Generic));
            }
            match daemon.find_alias(map) {
                Some(i) => daemon.flush_map(i).map(|()| {
                    daemon.touch();
                    String::new()
                }),
                None => {
                    std::thread::sleep(daemon.config.missing_map_delay);
                    Err(Failure::Generic)
                }
            }
        }
        Handler::SwitchGroup => (|| {
            let i = by_name(daemon)?;
            // atoi: a word that is no number is group 0, which the kernel refuses
            let group: usize = cmd.param(Keyword::Group).parse().unwrap_or(0);
            if group == 0 || group > daemon.maps[i].layout.len() {
                return Err(Failure::Generic);
            }
            // A message to the kernel; the daemon counts only its own switches.
            daemon.maps[i].current = group - 1;
            Ok(String::new())
        })(),
        Handler::Suspend | Handler::Resume | Handler::ResetMap => {
            by_name(daemon).map(|_| String::new())
        }
        _ => return None,
    })
}

/// libdevmapper refuses a name this long (`dm_task_set_name`).
const DM_NAME_LEN: usize = 128;

/// 0.4.9's `cli_add_path`: a blacklisted name or WWID is answered `blacklisted`; a path the
/// daemon has in a map already is `ok` at once; otherwise `ev_add_path` puts it in its map
/// or, if XenServer's `should_multipath` finds its WWID in the wwids file, builds the map
/// (adopting every monitored path of that WWID) — else the path stays an orphan, also `ok`.
fn add_path_0_4_9(
    fabric: &crate::fabric::Fabric,
    daemon: &mut Daemon,
    name: &str,
) -> Result<String, Failure> {
    if daemon.devnode_blacklisted(name) {
        return Ok("blacklisted\n".into());
    }
    let id = match daemon
        .find_path(fabric, name)
        .filter(|id| fabric.device(*id).name == name)
    {
        Some(id) if daemon.map_of(fabric, id).is_some() => return Ok(String::new()),
        Some(id) => id,
        None => {
            let device = fabric
                .device_named(name)
                .filter(|d| d.present)
                .ok_or(Failure::Generic)?;
            if daemon
                .config
                .blacklist_wwids
                .contains(&fabric.lun(device.lun).wwid)
            {
                return Ok("blacklisted\n".into());
            }
            device.id
        }
    };
    let mut reload = BTreeSet::new();
    daemon.add_path(fabric, id, &mut reload);
    for wwid in reload {
        daemon.reload(fabric, &wwid);
    }
    daemon.touch();
    Ok(String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokenizer_follows_multipathd() {
        assert_eq!(
            tokenize("show paths format \"%d %w\""),
            ["show", "paths", "format", "%d %w"]
        );
        assert_eq!(tokenize("show maps # comment"), ["show", "maps"]);
        assert_eq!(tokenize("  ! all comment"), Vec::<String>::new());
        assert_eq!(tokenize("a \"say \"\"hi\"\"\" b"), ["a", "say \"hi\"", "b"]);
        assert_eq!(tokenize("show maps \n"), ["show", "maps"]);
    }

    #[test]
    fn prefixes_and_ambiguity() {
        assert_eq!(find_key("sho").map(|k| k.0), Some(Keyword::List));
        assert_eq!(find_key("sh"), None, "show and shutdown");
        assert_eq!(
            find_key("map").map(|k| k.0),
            Some(Keyword::Map),
            "exact match wins over maps"
        );
        assert_eq!(find_key("multipath").map(|k| k.0), Some(Keyword::Map));
    }

    #[test]
    fn parse_outcomes() {
        assert_eq!(
            parse("show maps json").unwrap().handler,
            Handler::ListMapsJson
        );
        assert_eq!(
            parse("list multipaths topology").unwrap().handler,
            Handler::ListTopology
        );
        assert_eq!(
            parse("show json maps").err(),
            Some(Refusal::MissingArgument)
        );
        assert_eq!(parse("show maps frob").err(), Some(Refusal::NotFound));
        assert_eq!(parse("frob maps").err(), Some(Refusal::Unknown));
        assert_eq!(parse("show map").err(), Some(Refusal::MissingArgument));
        assert_eq!(parse("").err(), Some(Refusal::Empty));
        let p = parse("show map 3600a topology").unwrap();
        assert_eq!(p.param(Keyword::Map), "3600a");
    }

    #[test]
    fn the_0_4_9_keywords_end_at_key() {
        assert_eq!(KEYWORDS_0_4_9.last().map(|k| k.0), Some("key"));
        assert_eq!(find_key_in(KEYWORDS_0_4_9, "al"), None, "no `all`");
        assert_eq!(find_key_in(KEYWORDS_0_4_9, "loc"), None, "no `local`");
    }

    #[test]
    fn the_0_4_9_tokenizer_makes_quotes_words() {
        assert_eq!(
            tokenize_0_4_9("show paths format \"%d %w\""),
            ["show", "paths", "format", "\"", "%d %w", "\""]
        );
        assert_eq!(
            tokenize_0_4_9("a \"  x#y \" b # c"),
            ["a", "\"", "x#y ", "\"", "b"]
        );
        assert_eq!(tokenize_0_4_9("  # all comment"), Vec::<String>::new());
        assert_eq!(tokenize_0_4_9("x{y}"), ["x", "{", "y", "}"]);
        assert_eq!(tokenize_0_4_9("a\x0bb\x1fc"), ["a", "b\x1fc"]);
        let p = parse_0_4_9("maps show raw format \"%n\"").unwrap();
        assert_eq!(p.handler, Handler::ListMapsRaw);
        assert_eq!(p.param(Keyword::Format), "%n");
        assert!(parse_0_4_9("show map X raw format %n").is_none());
        assert!(
            parse_0_4_9("show maps format \"\"").is_none(),
            "no format left"
        );
    }

    #[test]
    fn help_lists_aliases_and_parameters() {
        let h = help(ReplyStyle::V0_9_8);
        assert!(h.starts_with("multipath-tools v0.9.8 (02/15, 2024)\nCLI commands reference:\n"));
        assert!(h.contains("\n list|show map|multipath $map topology\n"));
        assert!(h.contains("\n remove|del map|multipath $map\n"));
        assert!(h.contains("\n list|show paths raw format $format\n"));
    }
}
