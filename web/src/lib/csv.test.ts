import { describe, expect, it } from 'vitest';
import { csvCell, toCsv } from './csv';

describe('csv', () => {
  it('quotes cells with commas, quotes and newlines', () => {
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell('a,b')).toBe('"a,b"');
    expect(csvCell('say "hi"')).toBe('"say ""hi"""');
    expect(csvCell('two\nlines')).toBe('"two\nlines"');
    expect(csvCell(null)).toBe('');
    expect(csvCell(42)).toBe('42');
    expect(csvCell(-5)).toBe('-5');
  });

  it('serialises objects as JSON and defuses spreadsheet formulas', () => {
    expect(csvCell({ a: 1 })).toBe('"{""a"":1}"');
    expect(csvCell('=HYPERLINK("x")')).toBe('"\'=HYPERLINK(""x"")"');
    expect(csvCell('@cmd')).toBe("'@cmd");
  });

  it('writes a header and CRLF-terminated rows', () => {
    const rows = [{ id: 'audit-1', action: 'certificate_created', details: { name: 'web' } }];
    const csv = toCsv(rows, [
      { header: 'id', value: (r) => r.id },
      { header: 'action', value: (r) => r.action },
      { header: 'details', value: (r) => r.details },
    ]);
    expect(csv).toBe('id,action,details\r\naudit-1,certificate_created,"{""name"":""web""}"\r\n');
  });
});
