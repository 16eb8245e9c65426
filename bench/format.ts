/** Text shared by the report's tables (bench/report.ts and the soak's, bench/soak-report.ts). */

/** `201×59, 409×941`: how many of each status or outcome. */
export function countsText(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([status, n]) => `${status}×${n}`)
    .join(', ');
}
