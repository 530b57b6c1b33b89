//! multipathd's command language: the tokenizer, keywords matched by unique prefix, the
//! handler table, the help text, and the replies each failure gets
//! (`multipath-facts.md` §2; `multipathd/cli.c`, `uxlsnr.c` of 0.9.4 and 0.9.8).

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
    let mut found = None;
    for (text, key, param) in KEYWORDS {
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
        ReplyStyle::V0_9_4 => "",
        ReplyStyle::V0_9_8 => "fail\n",
    }
}

/// What the daemon answers one command; `root` is the peer's privilege.
pub(super) fn answer(world: &mut World, cmd: &str, root: bool, busy: &mut u32) -> Reply {
    let style = world.daemon.config.style;
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
        Handler::ListWildcards => wildcards(),
        Handler::ResetStats => {
            for map in &mut daemon.maps {
                map.path_faults = 0;
                map.switch_grp = 0;
                map.map_loads = 0;
            }
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
                ReplyStyle::V0_9_4 => Failure::Generic,
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
    fn help_lists_aliases_and_parameters() {
        let h = help(ReplyStyle::V0_9_8);
        assert!(h.starts_with("multipath-tools v0.9.8 (02/15, 2024)\nCLI commands reference:\n"));
        assert!(h.contains("\n list|show map|multipath $map topology\n"));
        assert!(h.contains("\n remove|del map|multipath $map\n"));
        assert!(h.contains("\n list|show paths raw format $format\n"));
    }
}
