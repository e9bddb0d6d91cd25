import { describe, expect, it } from 'vitest';
import { claimIdentifiers, InvalidIdentifierError, isSafeIdentifier, quoteIdent, quoteLiteral } from '../../src/postgres/identifiers.js';

describe('claim identifiers', () => {
  it('are deterministic and plain for simple names', () => {
    const a = claimIdentifiers('family', 'photos');
    expect(a).toEqual(claimIdentifiers('family', 'photos'));
    expect(a.schema).toBe('fh_family_photos');
    expect(a.ownerRole).toBe('fh_family_photos_owner');
    expect(a.staticLoginRole).toBe('fh_family_photos_app');
    expect(a.staticAltLoginRole).toBe('fh_family_photos_alt');
    expect(a.vaultName).toBe('fh-family-photos');
  });

  it('keep names apart that fold to the same text', () => {
    const a = claimIdentifiers('a-b', 'c');
    const b = claimIdentifiers('a', 'b-c');
    expect(a.schema).not.toBe(b.schema);
    expect(a.ownerRole).not.toBe(b.ownerRole);
  });

  it('shorten long and hostile names to safe identifiers within 63 bytes', () => {
    const hostile = [
      `x${'y'.repeat(199)}`,
      'robert"); drop table students;--',
      "o'reilly",
      'ünïcødé-名前-🙂',
      'a'.repeat(253),
      '"; select pg_sleep(10); --',
    ];
    const seen = new Set<string>();
    for (const n of hostile) {
      const ids = claimIdentifiers('family', n);
      for (const v of [ids.schema, ids.ownerRole, ids.staticLoginRole, ids.staticAltLoginRole]) {
        expect(isSafeIdentifier(v), v).toBe(true);
        expect(Buffer.byteLength(v)).toBeLessThanOrEqual(63);
      }
      expect(ids.vaultName).toMatch(/^[a-z0-9-]+$/);
      seen.add(ids.schema);
    }
    expect(seen.size).toBe(hostile.length);
  });

  it('accepts a valid schemaName override and rejects hostile ones', () => {
    expect(claimIdentifiers('family', 'photos', 'photos').schema).toBe('photos');
    for (const bad of ['Photos', 'a"b', 'x; drop schema public', 'pg_catalog', 'public', 'a'.repeat(64), '名前', '']) {
      expect(() => claimIdentifiers('family', 'photos', bad), bad).toThrow(InvalidIdentifierError);
    }
  });

  it('quoting doubles quotes and refuses what PostgreSQL would mangle', () => {
    expect(quoteIdent('a"b')).toBe('"a""b"');
    expect(quoteLiteral("it's")).toBe("'it''s'");
    expect(() => quoteIdent('x'.repeat(64))).toThrow(/63 bytes/);
    expect(() => quoteIdent('a\0b')).toThrow(/NUL/);
    expect(() => quoteLiteral('a\0b')).toThrow(/NUL/);
  });
});
