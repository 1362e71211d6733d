import { injectable } from 'tsyringe';

export interface City {
  name: string;
  country: string;
  lat: number;
  lon: number;
  /** Metres above sea level. */
  elevation: number;
  /** Fraction of days with rain in a typical year. */
  wetness: number;
}

const CITIES: City[] = [
  { name: 'Beijing', country: 'CN', lat: 39.9, lon: 116.4, elevation: 44, wetness: 0.2 },
  { name: 'Shanghai', country: 'CN', lat: 31.2, lon: 121.5, elevation: 4, wetness: 0.35 },
  { name: 'Tokyo', country: 'JP', lat: 35.7, lon: 139.7, elevation: 40, wetness: 0.32 },
  { name: 'Singapore', country: 'SG', lat: 1.35, lon: 103.8, elevation: 15, wetness: 0.45 },
  { name: 'Sydney', country: 'AU', lat: -33.9, lon: 151.2, elevation: 58, wetness: 0.3 },
  { name: 'Nairobi', country: 'KE', lat: -1.3, lon: 36.8, elevation: 1795, wetness: 0.25 },
  { name: 'Cairo', country: 'EG', lat: 30.0, lon: 31.2, elevation: 23, wetness: 0.02 },
  { name: 'London', country: 'GB', lat: 51.5, lon: -0.13, elevation: 11, wetness: 0.42 },
  { name: 'Moscow', country: 'RU', lat: 55.8, lon: 37.6, elevation: 156, wetness: 0.4 },
  { name: 'Reykjavik', country: 'IS', lat: 64.1, lon: -21.9, elevation: 15, wetness: 0.5 },
  { name: 'New York', country: 'US', lat: 40.7, lon: -74.0, elevation: 10, wetness: 0.33 },
  { name: 'Sao Paulo', country: 'BR', lat: -23.6, lon: -46.6, elevation: 760, wetness: 0.38 },
];

/** The cities the weather plugin knows, looked up without regard to case. */
@injectable()
export class CityCatalog {
  readonly #byName = new Map(CITIES.map((c) => [c.name.toLowerCase(), c]));

  find(name: string): City | undefined {
    return this.#byName.get(name.trim().toLowerCase());
  }

  all(): readonly City[] {
    return CITIES;
  }
}
