//! Multipathing: the host's setting ([`setting`]), lazy activation of device-mapper maps
//! for LUNs in use ([`activation`]), and the path counts published into xapi ([`counts`]).

pub mod activation;
pub mod counts;
pub mod setting;
