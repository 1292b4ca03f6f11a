// QEMU-style option strings: "virtio-blk-device,drive=d0,id=v0". Items are
// separated by commas; a literal comma inside a value is written ",," (as in
// QEMU). The first item may be a bare value (the "implied" key, such as the
// driver name or the cpu count); later items are key=value or bare flags
// ("server", "nowait").

export interface OptionItem {
  key: string | null;
  value: string;
}

/** Splits on single commas, turning ",," into a literal comma. */
export function splitItems(text: string): string[] {
  const items: string[] = [];
  let current = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text.charAt(i);
    if (ch === ",") {
      if (text[i + 1] === ",") {
        current += ",";
        i++;
        continue;
      }
      items.push(current);
      current = "";
      continue;
    }
    current += ch;
  }
  items.push(current);
  return items;
}

/** "a=1,b,c=x" → [{key:"a",value:"1"},{key:null,value:"b"},{key:"c",value:"x"}]. */
export function parseItems(text: string): OptionItem[] {
  return splitItems(text).map((item) => {
    const eq = item.indexOf("=");
    return eq < 0
      ? { key: null, value: item }
      : { key: item.slice(0, eq), value: item.slice(eq + 1) };
  });
}

/** Escapes a value for an option string (the inverse of splitItems). */
export function escapeValue(value: string): string {
  return value.replaceAll(",", ",,");
}

/** on/off switches; StratoVirt and QEMU also take true/false and yes/no. */
export function parseSwitch(value: string): boolean | null {
  switch (value) {
    case "on":
    case "true":
    case "yes":
      return true;
    case "off":
    case "false":
    case "no":
      return false;
    default:
      return null;
  }
}

export function formatSwitch(value: boolean): string {
  return value ? "on" : "off";
}
