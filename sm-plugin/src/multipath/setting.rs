//! Whether this host multipaths, and with which handle (`sm-facts.md` §3, `xapi-facts.md`
//! §4.2–4.3).
//!
//! xapi never puts the setting in `device_config`; it lives in `host.other_config`
//! (`multipathing`, `multipathhandle`), which we read through the session of the call. A
//! missing handle means `dmp` (CA-369395: `xe host-param-set multipathing=true` sets no
//! handle). The only place both keys travel in `device_config` is a generated config (the
//! HA statefile path, §2.3): there they win, because at boot there may be no xapi to ask.
//!
//! Unlike stock, which falls back to "off" on anything it does not understand, an unknown
//! handle with multipathing on (the deleted `mpp`, a typo) is an error that names it: a
//! pool administrator who asked for multipathing must not silently get a single path.

use crate::errors::{Code, SrError};
use crate::smapi::call::StringMap;

/// How a host reaches its LUNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handle {
    /// dm-multipath through multipathd.
    Dmp,
    /// No multipathing: one path, through udev's by-id link.
    Null,
}

impl Handle {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Dmp => "dmp",
            Self::Null => "null",
        }
    }
}

/// Where the setting came from, for log lines and error texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    DeviceConfig,
    HostOtherConfig,
}

/// The resolved setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub handle: Handle,
    pub source: Source,
}

impl Setting {
    pub fn multipath(self) -> bool {
        self.handle == Handle::Dmp
    }

    /// The `multipathing` value as a generated config carries it.
    pub fn multipathing_value(self) -> &'static str {
        if self.multipath() { "true" } else { "false" }
    }
}

/// Whether `device_config` carries the setting itself (a generated config).
pub fn in_device_config(device_config: &StringMap) -> bool {
    device_config.contains_key("multipathing") && device_config.contains_key("multipathhandle")
}

/// Resolves the setting from `device_config` (if it carries both keys) or from the host's
/// `other_config`.
pub fn resolve(
    device_config: &StringMap,
    host_other_config: &StringMap,
) -> Result<Setting, SrError> {
    let (enabled, handle, source) = if in_device_config(device_config) {
        (
            device_config.get("multipathing").map(String::as_str),
            device_config.get("multipathhandle").map(String::as_str),
            Source::DeviceConfig,
        )
    } else {
        (
            host_other_config.get("multipathing").map(String::as_str),
            host_other_config.get("multipathhandle").map(String::as_str),
            Source::HostOtherConfig,
        )
    };
    if enabled != Some("true") {
        return Ok(Setting {
            handle: Handle::Null,
            source,
        });
    }
    let handle = match handle.map(str::trim) {
        None | Some("") | Some("dmp") => Handle::Dmp,
        Some("null") => Handle::Null,
        Some(other) => {
            let place = match source {
                Source::DeviceConfig => "device_config:multipathhandle".to_string(),
                Source::HostOtherConfig => "host.other_config:multipathhandle".to_string(),
            };
            return Err(SrError::with(
                Code::MultipathGenericFailure,
                format!(
                    "multipathing is on but {place} is '{other}', a handle sm-rs does not know: \
                     use 'dmp' (dm-multipath) or 'null' (no multipathing), e.g. \
                     xe host-param-set uuid=<host-uuid> other-config:multipathhandle=dmp"
                ),
            ));
        }
    };
    Ok(Setting { handle, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn host_setting_with_the_dmp_default() {
        let none = StringMap::new();
        let on = resolve(&none, &map(&[("multipathing", "true")])).unwrap();
        assert_eq!(
            (on.handle, on.source),
            (Handle::Dmp, Source::HostOtherConfig)
        );
        let off = resolve(
            &none,
            &map(&[("multipathing", "false"), ("multipathhandle", "mpp")]),
        );
        assert_eq!(off.unwrap().handle, Handle::Null);
        assert_eq!(resolve(&none, &none).unwrap().handle, Handle::Null);
        let null = resolve(
            &none,
            &map(&[("multipathing", "true"), ("multipathhandle", "null")]),
        );
        assert_eq!(null.unwrap().handle, Handle::Null);
    }

    #[test]
    fn unknown_handles_are_named() {
        let e = resolve(
            &StringMap::new(),
            &map(&[("multipathing", "true"), ("multipathhandle", "mpp")]),
        )
        .unwrap_err();
        assert_eq!(e.code, Code::MultipathGenericFailure);
        assert!(e.fault_string().contains("'mpp'"), "{e}");
    }

    #[test]
    fn a_generated_config_wins() {
        let dconf = map(&[("multipathing", "true"), ("multipathhandle", "dmp")]);
        let s = resolve(&dconf, &map(&[("multipathing", "false")])).unwrap();
        assert_eq!((s.handle, s.source), (Handle::Dmp, Source::DeviceConfig));
        // One key alone is not a generated config.
        let half = map(&[("multipathing", "true")]);
        assert_eq!(
            resolve(&half, &StringMap::new()).unwrap().handle,
            Handle::Null
        );
    }
}
