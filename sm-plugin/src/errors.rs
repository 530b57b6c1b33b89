//! The SR error codes a driver answers with (`XE_SR_ERRORCODES.xml`, `sm-facts.md` §1.5).
//!
//! xapi maps a few codes to its own errors (24 `VDI_IN_USE`, 16 `SR_DEVICE_IN_USE`, 38, 39,
//! 144) and every other code `n` to `SR_BACKEND_FAILURE_n` with the fault string and our
//! stderr. The fault string is the code's description, then ` [opterr=…]` when we know more,
//! exactly as stock builds it; the opterr is where a person reads what to do, so it names the
//! portal, the SCSIid, the command and what it said. It never holds a secret: text that could
//! (a command line, a command's output) goes through [`crate::host::command`], which redacts.

use std::fmt;

/// Defines [`Code`]: each name as the XML spells it, its number and its description.
macro_rules! codes {
    ($($name:ident = $value:literal, $description:literal;)+) => {
        /// One entry of the error table.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Code {
            $($name,)+
        }

        impl Code {
            pub fn value(self) -> i32 {
                match self {
                    $(Self::$name => $value,)+
                }
            }

            /// The name as `XE_SR_ERRORCODES.xml` spells it.
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$name => stringify!($name),)+
                }
            }

            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$name => $description,)+
                }
            }
        }
    };
}

codes! {
    SRInUse = 16, "The SR device is currently in use";
    InvalidDev = 19, "No such device";
    InvalidSecret = 20, "No such secret.";
    VDIInUse = 24, "The VDI is currently in use";
    LockErr = 37, "The lock/unlock request failed";
    Unimplemented = 38, "The requested method is not supported/implemented";
    SRScan = 40, "The SR scan failed";
    SRNoSpace = 44, "There is insufficient space";
    VDIUnavailable = 46, "The VDI is not available";
    SRUnavailable = 47, "The SR is not available";
    ISCSIDevice = 67, "ISCSI device failed to appear";
    ISCSILogin = 68, "ISCSI login failed - check access settings for the initiator on the storage, if CHAP is used verify CHAP credentials";
    ISCSILogout = 69, "ISCSI logout failed";
    ISCSIDiscovery = 83, "ISCSI discovery failed";
    ISCSIQueryDaemon = 86, "Failed to query the iscsi daemon";
    ConfigTargetMissing = 95, "The request is missing the target parameter";
    ConfigTargetIQNMissing = 96, "The request is missing or has an incorrect target IQN parameter";
    ConfigISCSIIQNMissing = 97, "Unable to retrieve the host configuration ISCSI IQN parameter";
    ConfigSCSIid = 107, "The SCSIid parameter is missing or incorrect";
    ConfigParamsMissing = 115, "Not all required parameters specified.";
    DNSError = 140, "Incorrect DNS name, unable to resolve.";
    ISCSITarget = 141, "Unable to connect to ISCSI service on target";
    ISCSIPort = 142, "Incorrect value for iSCSI port, must be a number between 1 and 65535";
    BadRequest = 143, "Failed to parse the request";
    VDIMissing = 144, "VDI could not be found";
    APIFailure = 153, "A Failure occurred accessing an API object";
    SMGeneral = 202, "General backend error";
    MultipathdCommsFailure = 430, "Failed to communicate with the multipath daemon";
    MultipathGenericFailure = 431, "Multipath generic failure";
    MultipathMapperPathMissing = 432, "Device Mapper path missing";
    MultipathDeviceNotAppeared = 433, "Device Mapper path not appeared yet";
    MultipathDeviceNoScsiid = 434, "Device Mapper path no SCSI ID supplied";
    GenericException = 1200, "SM has thrown a generic python exception";
}

/// A failure as the driver reports it: a code and, when we know more, what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrError {
    pub code: Code,
    pub opterr: Option<String>,
}

impl SrError {
    pub fn new(code: Code) -> Self {
        Self { code, opterr: None }
    }

    pub fn with(code: Code, opterr: impl Into<String>) -> Self {
        Self {
            code,
            opterr: Some(opterr.into()),
        }
    }

    /// The fault string: the description, then ` [opterr=…]` as stock writes it.
    pub fn fault_string(&self) -> String {
        match &self.opterr {
            Some(opterr) => format!("{} [opterr={opterr}]", self.code.description()),
            None => self.code.description().to_string(),
        }
    }
}

impl fmt::Display for SrError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.code.name(),
            self.code.value(),
            self.fault_string()
        )
    }
}

impl std::error::Error for SrError {}

pub type Result<T, E = SrError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fault_strings_are_built_as_stock_builds_them() {
        assert_eq!(
            SrError::new(Code::VDIInUse).fault_string(),
            "The VDI is currently in use"
        );
        assert_eq!(
            SrError::with(
                Code::ISCSILogin,
                "portal 192.0.2.1:3260: authorization failure"
            )
            .fault_string(),
            "ISCSI login failed - check access settings for the initiator on the storage, if \
             CHAP is used verify CHAP credentials [opterr=portal 192.0.2.1:3260: authorization \
             failure]"
        );
        assert_eq!(Code::MultipathGenericFailure.value(), 431);
        assert_eq!(Code::BadRequest.name(), "BadRequest");
    }
}
