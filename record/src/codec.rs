//! Native codec (to be written).
