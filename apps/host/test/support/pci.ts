// The probe guest's `pci` scan, as host tests read it.

/** The scan's functions, as "BB:DD.F VVVV:DDDD CCCCCC", in scan order. */
export function pciFunctions(lines: readonly string[]): string[] {
  return lines.filter((l) => /^pci [0-9a-f]{2}:/.test(l)).map((l) => l.slice("pci ".length));
}
