"use client";
// The sites in the caller's scope, with their floor plans, for the map.
import { useEffect, useState } from "react";
import { api, type Site, type SiteLayout } from "@/api/client";

/** Every site the caller may see (empty until loaded, or when the request fails: the map
 * then shows the bare grid, which is all it loses). */
export function useSites(): Site[] {
  const [sites, setSites] = useState<Site[]>([]);
  useEffect(() => {
    void api.GET("/api/v1/sites").then(({ data }) => setSites(data ?? []));
  }, []);
  return sites;
}

/** The floor plan of `siteId`, or, with no site given, of the only site there is. */
export function layoutOf(sites: Site[], siteId?: string): SiteLayout | null {
  const site = siteId !== undefined ? sites.find((s) => s.id === siteId) : sites.length === 1 ? sites[0] : undefined;
  return site?.layout ?? null;
}
