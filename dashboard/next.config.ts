import type { NextConfig } from "next";

// A static export the hub serves at `/`: no server, no image optimiser, no remote fonts.
const config: NextConfig = {
  output: "export",
  trailingSlash: true,
  images: { unoptimized: true },
  reactStrictMode: true,
  poweredByHeader: false,
  // Types are checked by `tsc --noEmit` (make dashboard / tests) rather than twice.
  typescript: { ignoreBuildErrors: true },
};

export default config;
