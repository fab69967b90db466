//! # citybrain-ops
//!
//! Incidents: alerts become cases routed to the grid unit that owns the place and escalated up
//! the four-level chain (community → street → district → city). Work in progress.
