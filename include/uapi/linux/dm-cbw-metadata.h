/* SPDX-License-Identifier: GPL-2.0 WITH Linux-syscall-note */
/*
 * dm-cbw: the on-disk format of a metadata device, version 1.
 *
 * "cbwctl metadata format" writes an empty format from user space; the
 * kernel reads it when a cbw table names the device (metadata_dev), and
 * refuses a device that is not one, is damaged or belongs to another
 * origin.  Everything is little-endian, in 4 KiB blocks:
 *
 *   block 0                  superblock
 *   block 1                  bitmap directory
 *   blocks 2 .. 2+I-1        write-intent area, I = intent_blocks
 *   blocks 2+I .. nr_blocks  bitmap area: each bitmap is a run of blocks
 *
 * Every block starts with a struct dm_cbw_md_header.  Its checksum is the
 * CRC-32C (Castagnoli, reflected polynomial 0x82f63b78, no final
 * inversion, as Linux's crc32c()) of the whole block with the csum field
 * zero, seeded with DM_CBW_MD_CSUM_SEED(blocknr): a block written to the
 * wrong place, or one from another device type, fails it.
 *
 * Intent and bitmap blocks hold DM_CBW_MD_BITS_PER_BLOCK bits after the
 * header, bit i in byte i / 8 at bit i % 8 (least significant first).
 */
#ifndef _UAPI_LINUX_DM_CBW_METADATA_H
#define _UAPI_LINUX_DM_CBW_METADATA_H

#include <linux/types.h>

#define DM_CBW_MD_BLOCK_SIZE		4096
#define DM_CBW_MD_BLOCK_SECTORS		(DM_CBW_MD_BLOCK_SIZE >> 9)
#define DM_CBW_MD_VERSION		1

/* The superblock's magic: the 8 bytes "dm-cbwMD", no NUL. */
#define DM_CBW_MD_MAGIC			"dm-cbwMD"
#define DM_CBW_MD_MAGIC_LEN		8

/* Block types, in dm_cbw_md_header.type. */
#define DM_CBW_MD_TYPE_SUPERBLOCK	1
#define DM_CBW_MD_TYPE_DIRECTORY	2
#define DM_CBW_MD_TYPE_INTENT		3
#define DM_CBW_MD_TYPE_BITMAP		4

/* The fixed places of the superblock, the directory and the intent area. */
#define DM_CBW_MD_SUPERBLOCK_BLOCK	0
#define DM_CBW_MD_DIRECTORY_BLOCK	1
#define DM_CBW_MD_INTENT_BLOCK		2

#define DM_CBW_MD_CSUM_SEED(blocknr)	(~(__u32)(blocknr))

/* Write-intent region size in sectors: a power of 2, 1 MiB to 1 TiB. */
#define DM_CBW_MD_MIN_REGION_SECTORS	2048
#define DM_CBW_MD_MAX_REGION_SECTORS	(1ULL << 31)
#define DM_CBW_MD_DEFAULT_REGION_SECTORS 131072	/* 64 MiB */

/**
 * struct dm_cbw_md_header - the first 16 bytes of every block
 * @csum: CRC-32C of the block with this field zero (see above)
 * @type: DM_CBW_MD_TYPE_*
 * @blocknr: the number of the block itself
 */
struct dm_cbw_md_header {
	__le32 csum;
	__le32 type;
	__le64 blocknr;
};

#define DM_CBW_MD_BITS_PER_BLOCK \
	((DM_CBW_MD_BLOCK_SIZE - sizeof(struct dm_cbw_md_header)) * 8)

/* Superblock flags. */
#define DM_CBW_MD_IN_USE		(1U << 0)	/* not shut down cleanly */

/**
 * struct dm_cbw_md_superblock - block 0
 * @header: type DM_CBW_MD_TYPE_SUPERBLOCK
 * @magic: DM_CBW_MD_MAGIC
 * @version: DM_CBW_MD_VERSION
 * @flags: DM_CBW_MD_IN_USE while a table uses the device
 * @uuid: random, made by the format: the identity of the metadata
 * @origin_sectors: the size of the origin device the format is for; a
 *	table whose origin has another size is refused
 * @nr_blocks: the blocks of the format, at most the device's
 * @block_size: DM_CBW_MD_BLOCK_SIZE
 * @max_bitmaps: the entries of the directory, DM_CBW_MAX_BITMAPS
 * @region_sectors: the size of a write-intent region
 * @intent_blocks: ceil(ceil(origin_sectors / region_sectors) /
 *	DM_CBW_MD_BITS_PER_BLOCK)
 * @bitmap_block: the first block of the bitmap area, 2 + intent_blocks
 * @next_generation: the generation the next new or reset bitmap gets
 * @reserved: zero
 */
struct dm_cbw_md_superblock {
	struct dm_cbw_md_header header;
	__u8 magic[DM_CBW_MD_MAGIC_LEN];
	__le32 version;
	__le32 flags;
	__u8 uuid[16];
	__le64 origin_sectors;
	__le64 nr_blocks;
	__le32 block_size;
	__le32 max_bitmaps;
	__le64 region_sectors;
	__le64 intent_blocks;
	__le64 bitmap_block;
	__le64 next_generation;
	__le64 reserved[8];
};

/* Bitmap directory entry flags. */
#define DM_CBW_MD_BITMAP_USED		(1U << 0)	/* the entry is a bitmap */
#define DM_CBW_MD_BITMAP_ENABLED	(1U << 1)	/* it records writes */
#define DM_CBW_MD_BITMAP_INCONSISTENT	(1U << 2)	/* its bits are lost */

/**
 * struct dm_cbw_md_bitmap_entry - one bitmap in the directory
 * @name: NUL-terminated, a valid bitmap name; zero in a free entry
 * @granularity: bytes per bit
 * @len_sectors: the device length it covers
 * @generation: changes whenever its bits are lost or reset
 * @first_block: its first block in the bitmap area
 * @nr_blocks: ceil(ceil(len_sectors * 512 / granularity) /
 *	DM_CBW_MD_BITS_PER_BLOCK)
 * @flags: DM_CBW_MD_BITMAP_*
 * @reserved: zero
 *
 * A free entry is all zero.
 */
struct dm_cbw_md_bitmap_entry {
	char name[64];
	__le64 granularity;
	__le64 len_sectors;
	__le64 generation;
	__le64 first_block;
	__le64 nr_blocks;
	__le32 flags;
	__le32 reserved;
};

/**
 * struct dm_cbw_md_directory - block 1
 * @header: type DM_CBW_MD_TYPE_DIRECTORY
 * @nr_entries: DM_CBW_MAX_BITMAPS
 * @reserved: zero
 * @entries: the bitmaps, in the order they were added; free ones zero
 */
struct dm_cbw_md_directory {
	struct dm_cbw_md_header header;
	__le32 nr_entries;
	__le32 reserved;
	struct dm_cbw_md_bitmap_entry entries[32];
};

#endif /* _UAPI_LINUX_DM_CBW_METADATA_H */
