//! The simulator's own Graph JSON wire types and conversions to/from the model. (Skeleton.)
