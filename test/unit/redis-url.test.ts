import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/errors.js';
import { redisOptions } from '../../src/queue/connection.js';

describe('Redis URLs', () => {
  it('reads host, port, db and credentials', () => {
    expect(redisOptions('redis://bot:p%40ss@cache.internal:6380/2')).toEqual({ host: 'cache.internal', port: 6380, db: 2, username: 'bot', password: 'p@ss' });
    expect(redisOptions('redis://127.0.0.1')).toEqual({ host: '127.0.0.1', port: 6379, db: 0 });
  });

  it('turns on TLS for rediss://', () => {
    expect(redisOptions('rediss://cache:6390')).toMatchObject({ host: 'cache', port: 6390, tls: {} });
  });

  it('reads Sentinel addresses and the master name', () => {
    expect(redisOptions('redis+sentinel://:secret@s1:26379,s2:26380/queue-master')).toEqual({
      sentinels: [
        { host: 's1', port: 26379 },
        { host: 's2', port: 26380 },
      ],
      name: 'queue-master',
      password: 'secret',
    });
  });

  it('rejects other schemes and garbage without echoing credentials', () => {
    expect(() => redisOptions('http://cache:6379')).toThrow(InvalidInputError);
    try {
      redisOptions('redis://user:topsecret@[bad');
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).message).not.toContain('topsecret');
    }
  });
});
