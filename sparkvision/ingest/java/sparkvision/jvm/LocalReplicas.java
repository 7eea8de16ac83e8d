package sparkvision.jvm;

import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.File;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.ChecksumException;
import org.apache.hadoop.fs.StorageType;
import org.apache.hadoop.hdfs.DFSUtilClient;
import org.apache.hadoop.hdfs.client.HdfsClientConfigKeys;
import org.apache.hadoop.hdfs.protocol.BlockLocalPathInfo;
import org.apache.hadoop.hdfs.protocol.ClientDatanodeProtocol;
import org.apache.hadoop.hdfs.protocol.DatanodeInfo;
import org.apache.hadoop.hdfs.protocol.ExtendedBlock;
import org.apache.hadoop.hdfs.protocol.LocatedBlock;
import org.apache.hadoop.hdfs.protocol.LocatedBlocks;
import org.apache.hadoop.hdfs.server.datanode.BlockMetadataHeader;
import org.apache.hadoop.ipc.RemoteException;
import org.apache.hadoop.net.NetUtils;
import org.apache.hadoop.security.AccessControlException;

/**
 * Reads a small file's one block straight from a DataNode on this host, with a DataNode call per storage folder
 * instead of one per block.
 *
 * <p>Hadoop's legacy short-circuit reader ({@code dfs.client.use.legacy.blockreader.local}) asks the local
 * DataNode where each block's files are ({@code getBlockLocalPathInfo}, an RPC) and reads them from its disk. For
 * a file of a few hundred bytes that call is most of the read, in the client and in the DataNode. A finalized
 * replica's files are at a place the block names: {@code <finalized>/subdir<(id >> 16) & 31>/subdir<(id >> 8) &
 * 31>/blk_<id>} and {@code blk_<id>_<generation stamp>.meta} beside it (the DataNode's block-ID layout). So one
 * call per storage folder is enough: its answer gives the folder, and later blocks are looked for there first
 * (in the known folders of every local replica's DataNode before any is asked). A block found nowhere (another
 * volume, moved, being written) is asked for, except of a DataNode that could not be reached (a stopped one is
 * asked once, as Hadoop's reader does, then read as usual); the metadata file's name holds the
 * generation stamp, so a replica appended or truncated since the listing is not taken; the data is checked
 * against the replica's checksums (unless {@code dfs.client.read.shortcircuit.skip.checksum}).
 *
 * <p>{@link #read} answers null whenever it cannot read a file this way (not local, several blocks, encrypted,
 * erasure-coded, transient storage, a checksum that does not match, any error): the caller then opens the file
 * as usual, and the regular reader reports what is wrong (a corrupt replica to the NameNode, too). Used only where
 * the legacy short-circuit reader is configured: the same users may read the same files as with it.
 */
final class LocalReplicas {
  private final Configuration conf;
  private final int socketTimeout;
  private final boolean viaHostname;
  private final boolean verify;
  /** Transfer address of a DataNode -> whether it is on this host. */
  private final ConcurrentHashMap<String, Boolean> local = new ConcurrentHashMap<>();
  /** DataNode UUID and block pool -> what is known of its storage. */
  private final ConcurrentHashMap<String, Node> nodes = new ConcurrentHashMap<>();

  LocalReplicas(Configuration conf) {
    this.conf = conf;
    this.socketTimeout = conf.getInt(HdfsClientConfigKeys.DFS_CLIENT_SOCKET_TIMEOUT_KEY, 60_000);
    this.viaHostname = conf.getBoolean(HdfsClientConfigKeys.DFS_CLIENT_USE_DN_HOSTNAME, false);
    this.verify = !conf.getBoolean(HdfsClientConfigKeys.Read.ShortCircuit.SKIP_CHECKSUM_KEY, false);
  }

  /** Whether {@code conf} asks for the legacy short-circuit reader (this class reads only where it would). */
  static boolean configured(Configuration conf) {
    return conf.getBoolean(HdfsClientConfigKeys.Read.ShortCircuit.KEY, false)
        && conf.getBoolean(HdfsClientConfigKeys.DFS_CLIENT_USE_LEGACY_BLOCKREADERLOCAL, false);
  }

  /** The bytes of the file {@code src} whose blocks are {@code blocks}, or null where this reader does not apply. */
  byte[] read(String src, LocatedBlocks blocks) {
    if (blocks.isUnderConstruction()
        || !blocks.isLastBlockComplete()
        || blocks.getFileEncryptionInfo() != null
        || blocks.getErasureCodingPolicy() != null) {
      return null;
    }
    long length = blocks.getFileLength();
    List<LocatedBlock> list = blocks.getLocatedBlocks();
    if (length == 0 && list.isEmpty()) {
      return new byte[0];
    }
    if (list.size() != 1 || length > Integer.MAX_VALUE - 16) {
      return null;
    }
    LocatedBlock block = list.get(0);
    if (block.getBlockSize() != length || block.isCorrupt()) {
      return null;
    }
    DatanodeInfo[] locations = block.getLocations();
    StorageType[] types = block.getStorageTypes();
    // first the storage folders already known of every local replica's DataNode, then ask them
    for (boolean ask : new boolean[] {false, true}) {
      for (int i = 0; i < locations.length; i++) {
        if ((types != null && i < types.length && types[i].isTransient()) || !isLocal(locations[i])) {
          continue;
        }
        String key = locations[i].getDatanodeUuid() + " " + block.getBlock().getBlockPoolId();
        Node node = nodes.computeIfAbsent(key, k -> new Node());
        byte[] data = node.read(locations[i], block, (int) length, src, ask);
        if (data != null) {
          return data;
        }
      }
    }
    return null;
  }

  private boolean isLocal(DatanodeInfo node) {
    return local.computeIfAbsent(node.getXferAddr(viaHostname), address -> {
      try {
        return DFSUtilClient.isLocalAddress(NetUtils.createSocketAddr(address));
      } catch (IOException | RuntimeException e) {
        return false;
      }
    });
  }

  /** One local DataNode's block pool: its storage folders seen so far (their {@code finalized} folders). */
  private final class Node {
    private final List<File> finalized = new CopyOnWriteArrayList<>();
    private ClientDatanodeProtocol proxy;
    private volatile boolean usable = true;

    /** The block's bytes from a folder already known or, if {@code ask}, from where the DataNode says it is. */
    byte[] read(DatanodeInfo datanode, LocatedBlock located, int length, String src, boolean ask) {
      if (!usable) {
        return null;
      }
      ExtendedBlock block = located.getBlock();
      long id = block.getBlockId();
      String name = "blk_" + id;
      String meta = name + "_" + block.getGenerationStamp() + ".meta";
      String subdirs = "subdir" + ((id >> 16) & 0x1F) + File.separator + "subdir" + ((id >> 8) & 0x1F);
      try {
        if (!ask) {
          for (File folder : finalized) {
            File dir = new File(folder, subdirs);
            byte[] data = read(new File(dir, name), new File(dir, meta), block, length, src);
            if (data != null) {
              return data;
            }
          }
          return null;
        }
        BlockLocalPathInfo info = where(datanode, located);
        if (info == null) {
          return null;
        }
        File data = new File(info.getBlockPath());
        learn(data, subdirs, name);
        return read(data, new File(info.getMetaPath()), block, length, src);
      } catch (ChecksumException e) {
        return null; // the regular reader reads it again, and reports the replica
      } catch (IOException | RuntimeException e) {
        usable = false; // files this user cannot read, or not this layout: this DataNode is read as usual
        return null;
      }
    }

    /**
     * Where the DataNode keeps the block's files, or null when it cannot say: the block is not there (such as a
     * file removed since), this user may not read its disks ({@code dfs.block.local-path-access.user}), or it
     * cannot be reached (stopped: the IPC client spent its connection retries, so it is not asked again).
     */
    private BlockLocalPathInfo where(DatanodeInfo datanode, LocatedBlock located) {
      try {
        return proxy(datanode).getBlockLocalPathInfo(located.getBlock(), located.getBlockToken());
      } catch (RemoteException e) {
        if (e.unwrapRemoteException() instanceof AccessControlException) {
          usable = false;
        }
        return null;
      } catch (IOException | RuntimeException e) {
        usable = false;
        return null;
      }
    }

    /** The block's bytes from its files, or null when they are not there or not the listed replica. */
    private byte[] read(File dataFile, File metaFile, ExtendedBlock block, int length, String src)
        throws IOException {
      byte[] sums;
      byte[] data;
      try {
        sums = Files.readAllBytes(metaFile.toPath());
        data = Files.readAllBytes(dataFile.toPath());
      } catch (NoSuchFileException e) {
        return null;
      }
      if (data.length != length) {
        return null;
      }
      if (verify) {
        var checksum = BlockMetadataHeader.readDataChecksum(new DataInputStream(new ByteArrayInputStream(sums)), block);
        int header = BlockMetadataHeader.getHeaderSize();
        int chunks = (length + checksum.getBytesPerChecksum() - 1) / checksum.getBytesPerChecksum();
        if (sums.length - header < (long) chunks * checksum.getChecksumSize()) {
          return null;
        }
        checksum.verifyChunkedSums(ByteBuffer.wrap(data), ByteBuffer.wrap(sums, header, sums.length - header), src, 0);
      }
      return data;
    }

    /** Keep the {@code finalized} folder of a block file the DataNode named, if it has the block-ID layout. */
    private void learn(File dataFile, String subdirs, String name) {
      File dir = dataFile.getParentFile();
      if (dataFile.getName().equals(name) && dir != null && dir.getPath().endsWith(File.separator + subdirs)) {
        File folder = dir.getParentFile().getParentFile();
        if (folder != null && !finalized.contains(folder)) {
          finalized.add(folder);
        }
      }
    }

    private synchronized ClientDatanodeProtocol proxy(DatanodeInfo datanode) throws IOException {
      if (proxy == null) {
        proxy = DFSUtilClient.createClientDatanodeProtocolProxy(datanode, conf, socketTimeout, viaHostname);
      }
      return proxy;
    }
  }
}
