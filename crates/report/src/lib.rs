//! Self-contained HTML reports with inline SVG figures
