//! Feeds: the tables of the [catalog](crate::catalog) that citybrain reads.
//!
//! A [`Feed`] is a handle on one catalog table (cheap to clone; two handles are equal when they
//! name the same table): its name, Arrow schema, event-time column and bound, id columns,
//! personal columns and where its records come from. Nothing outside the catalog names a
//! feed or its columns; the city's own four feeds (`feeds/city.sql`, [`Catalog::city`]) are
//! known by name only to the city simulator.
//!
//! [`Catalog::city`]: crate::catalog::Catalog::city

/// A table of the catalog, read as a feed.
pub type Feed = crate::catalog::Table;
