//! `sm-testkit`: what the tests stand on.
